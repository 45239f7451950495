package unisender

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The API takes PHP-style arrays in form bodies:
// field_names[0]=email&data[0][0]=a@b.c&fields[Name]=Ann.

// setList adds name[0]=items[0], name[1]=items[1], ….
func setList(form map[string][]string, name string, items []string) {
	for i, v := range items {
		form[fmt.Sprintf("%s[%d]", name, i)] = []string{v}
	}
}

// setMatrix adds name[i][j]=rows[i][j].
func setMatrix(form map[string][]string, name string, rows [][]string) {
	for i, row := range rows {
		for j, v := range row {
			form[fmt.Sprintf("%s[%d][%d]", name, i, j)] = []string{v}
		}
	}
}

// setMap adds name[key]=value for each entry.
func setMap(form map[string][]string, name string, m map[string]string) {
	for k, v := range m {
		form[name+"["+k+"]"] = []string{v}
	}
}

// joinIDs renders ids as the comma-separated list the API expects.
func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// flexInt decodes an integer sent as a number or a numeric string; PHP
// back-ends are loose about it.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %.40s", s)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

// flexString decodes a string, number, boolean or null as text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	*f = flexString(b)
	return nil
}

// flexMap decodes an object of values, or PHP's [] for an empty one.
type flexMap map[string]string

func (f *flexMap) UnmarshalJSON(b []byte) error {
	if strings.HasPrefix(strings.TrimSpace(string(b)), "[") {
		*f = flexMap{}
		return nil
	}
	var m map[string]flexString
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*f = make(flexMap, len(m))
	for k, v := range m {
		(*f)[k] = string(v)
	}
	return nil
}

// flexList decodes an array of strings or one comma-separated string.
type flexList []string

func (f *flexList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*f = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*f = nil
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			*f = append(*f, t)
		}
	}
	return nil
}
