package unisenderemu

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// formValues are the merged body and query parameters of a call, as PHP's
// $_REQUEST would see them.
type formValues = url.Values

// bracketParts splits "name[a][b]" into "name" and ["a","b"]; ok is false
// when the key does not have that shape.
func bracketParts(key string) (name string, parts []string, ok bool) {
	open := strings.IndexByte(key, '[')
	if open <= 0 {
		return key, nil, false
	}
	name, rest := key[:open], key[open:]
	for rest != "" {
		if rest[0] != '[' {
			return "", nil, false
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", nil, false
		}
		parts = append(parts, rest[1:end])
		rest = rest[end+1:]
	}
	return name, parts, true
}

// listParam reads name[0]=…&name[1]=… (or PHP's name[]=…) in index order.
func listParam(form formValues, name string) []string {
	type item struct {
		idx   int
		value string
	}
	var items []item
	appended := 1 << 30 // name[] entries go after indexed ones, in order
	for key, values := range form {
		n, parts, ok := bracketParts(key)
		if !ok || n != name || len(parts) != 1 {
			continue
		}
		if parts[0] == "" {
			for _, v := range values {
				items = append(items, item{appended, v})
				appended++
			}
			continue
		}
		idx, err := strconv.Atoi(parts[0])
		if err != nil || idx < 0 || len(values) == 0 {
			continue
		}
		items = append(items, item{idx, values[0]})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].idx < items[j].idx })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.value
	}
	return out
}

// matrixRow is one data[i][…] row: its index i and its cells by column.
type matrixRow struct {
	index int
	cells map[int]string
}

// matrixParam reads name[i][j]=… into rows sorted by i. Keys with a
// non-numeric or negative index are ignored.
func matrixParam(form formValues, name string) []matrixRow {
	rows := make(map[int]map[int]string)
	for key, values := range form {
		n, parts, ok := bracketParts(key)
		if !ok || n != name || len(parts) != 2 || len(values) == 0 {
			continue
		}
		i, err1 := strconv.Atoi(parts[0])
		j, err2 := strconv.Atoi(parts[1])
		if err1 != nil || err2 != nil || i < 0 || j < 0 {
			continue
		}
		if rows[i] == nil {
			rows[i] = make(map[int]string)
		}
		rows[i][j] = values[0]
	}
	out := make([]matrixRow, 0, len(rows))
	for i, cells := range rows {
		out = append(out, matrixRow{index: i, cells: cells})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].index < out[b].index })
	return out
}

// mapParam reads name[key]=… into a map.
func mapParam(form formValues, name string) map[string]string {
	out := make(map[string]string)
	for key, values := range form {
		n, parts, ok := bracketParts(key)
		if ok && n == name && len(parts) == 1 && parts[0] != "" && len(values) > 0 {
			out[parts[0]] = values[0]
		}
	}
	return out
}

// idList parses a comma-separated list of numeric ids ("1,2, 3").
func idList(s string) ([]int64, bool) {
	var ids []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// tagList parses comma-separated tags, dropping blanks and duplicates.
func tagList(s string) []string {
	var tags []string
	seen := make(map[string]bool)
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t != "" && !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	return tags
}

// flag reads a 0/1 argument; ok is false for anything else but empty.
func flag(form formValues, name string) (value, ok bool) {
	switch form.Get(name) {
	case "", "0":
		return false, true
	case "1":
		return true, true
	}
	return false, false
}
