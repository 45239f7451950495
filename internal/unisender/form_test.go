package unisender

import (
	"net/url"
	"testing"
)

func TestFormEncoding(t *testing.T) {
	form := url.Values{}
	setList(form, "field_names", []string{"email", "Name"})
	setMatrix(form, "data", [][]string{{"a@b.c", "Ann"}, {"d@e.f", "Bob & Co"}})
	setMap(form, "fields", map[string]string{"email": "x@y.z"})
	want := "data%5B0%5D%5B0%5D=a%40b.c&data%5B0%5D%5B1%5D=Ann&data%5B1%5D%5B0%5D=d%40e.f&data%5B1%5D%5B1%5D=Bob+%26+Co" +
		"&field_names%5B0%5D=email&field_names%5B1%5D=Name&fields%5Bemail%5D=x%40y.z"
	if got := form.Encode(); got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
	if got := joinIDs([]int64{3, 55688}); got != "3,55688" {
		t.Fatalf("joinIDs = %q", got)
	}
}

func TestFlexibleDecoding(t *testing.T) {
	var i flexInt
	for in, want := range map[string]int64{`12`: 12, `"12"`: 12, `null`: 0, `12.0`: 12} {
		if err := i.UnmarshalJSON([]byte(in)); err != nil || int64(i) != want {
			t.Errorf("flexInt(%s) = %d, %v", in, i, err)
		}
	}
	if err := i.UnmarshalJSON([]byte(`"abc"`)); err == nil {
		t.Error("flexInt accepted a word")
	}
	var m flexMap
	if err := m.UnmarshalJSON([]byte(`[]`)); err != nil || len(m) != 0 {
		t.Errorf("flexMap([]) = %v, %v", m, err)
	}
	if err := m.UnmarshalJSON([]byte(`{"Name":"Ann","Age":42,"X":null}`)); err != nil || m["Name"] != "Ann" || m["Age"] != "42" || m["X"] != "" {
		t.Errorf("flexMap = %v, %v", m, err)
	}
}
