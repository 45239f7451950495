package kommoemu

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// listQuery is a parsed GET /api/v4/contacts query.
type listQuery struct {
	page, limit int
	order       contactOrder
	filter      contactFilter
}

// parseListQuery reads page, limit (at most 250), filter[updated_at][from|to],
// filter[id][] (also filter[id][n] and filter[id]), order[field]=asc|desc
// and query. Every bad parameter is reported, as Kommo's validation-errors.
func parseListQuery(q url.Values) (listQuery, []validationError) {
	lq := listQuery{page: 1, limit: DefaultContactsPageLimit, order: contactOrder{field: "id"}}
	var errs []validationError
	bad := func(path, format string, args ...any) {
		errs = append(errs, validationError{Path: path, Detail: fmt.Sprintf(format, args...)})
	}
	intParam := func(name string, dst *int, minimum, maximum int) {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < minimum || n > maximum {
				bad(name, "must be an integer from %d to %d", minimum, maximum)
				return
			}
			*dst = n
		}
	}
	intParam("page", &lq.page, 1, 1_000_000)
	intParam("limit", &lq.limit, 1, MaxContactsPageLimit)
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"filter[updated_at][from]", &lq.filter.updatedFrom}, {"filter[updated_at][to]", &lq.filter.updatedTo}} {
		if v := q.Get(b.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				bad(b.name, "must be a unix timestamp")
				continue
			}
			*b.dst = n
		}
	}
	for key, vals := range q {
		switch {
		case key == "filter[id]" || strings.HasPrefix(key, "filter[id]["):
			if lq.filter.ids == nil {
				lq.filter.ids = map[int64]bool{}
			}
			for _, v := range vals {
				id, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					bad(key, "must be a contact id")
					continue
				}
				lq.filter.ids[id] = true
			}
		case strings.HasPrefix(key, "order[") && strings.HasSuffix(key, "]"):
			field := key[len("order[") : len(key)-1]
			dir := q.Get(key)
			if (field != "id" && field != "updated_at" && field != "created_at") || (dir != "asc" && dir != "desc") {
				bad(key, "order by id, updated_at or created_at, asc or desc")
				continue
			}
			lq.order = contactOrder{field: field, desc: dir == "desc"}
		}
	}
	lq.filter.query = strings.ToLower(strings.TrimSpace(q.Get("query")))
	slices.SortFunc(errs, func(a, b validationError) int { return strings.Compare(a.Path, b.Path) })
	return lq, errs
}
