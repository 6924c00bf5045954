package ui

import (
	"net/http"

	"github.com/manifold-proxy/manifold/migrate"
	"github.com/manifold-proxy/manifold/proxy"
)

// row is one bare tag of the matrix.
type row struct {
	Base, URL, Bare, Serves string
	Index                   *migrate.ServedIndex
	Incomplete              []string
	Cells                   []cell
}

// cell is one platform of a row: the members that name it (more than one
// for duplicates; none for a platform the base lacks).
type cell struct {
	Class   string // in, out or none
	Members []migrate.MemberRow
}

// repoPage lays the report out as the matrix: a row per bare tag, a column
// per platform in index order.
func repoPage(r *http.Request, rv proxy.RepoView, rep *migrate.Plan, pg pager) any {
	platforms := platformOrder(rep.Platforms)
	col := map[string]int{}
	for i, p := range platforms {
		col[p] = i
	}
	var rows []row
	var problems []string
	for _, g := range rep.Groups {
		rw := row{Base: g.Base, URL: tagURL(rv.Name, g.Base), Bare: bareState(g), Serves: string(g.Serves), Index: g.Index,
			Incomplete: g.Incomplete, Cells: make([]cell, len(platforms))}
		for _, m := range g.Members {
			i, ok := col[m.Platform]
			if !ok {
				continue
			}
			rw.Cells[i].Members = append(rw.Cells[i].Members, m)
		}
		for i := range rw.Cells {
			rw.Cells[i].Class = cellClass(rw.Cells[i].Members)
		}
		rows = append(rows, rw)
		for _, p := range g.Problems {
			problems = append(problems, g.Base+": "+p)
		}
	}
	return struct {
		page
		Name, Age, APIURL string
		Plan              *migrate.Plan
		Platforms         []string
		Rows              []row
		Problems          []string
	}{page{Title: rv.Name, Host: r.Host, Pager: pg}, rv.Name, age(rv.Cache, rv.Repository), "/ui/api/r/" + pathEscape(rv.Name), rep, platforms, rows, problems}
}

// bareState says what the bare tag holds, and whether the proxy merges it.
func bareState(g migrate.BasePlan) string {
	for _, m := range g.Members {
		if m.Bare && m.Included {
			return "image, merged"
		}
	}
	switch g.Bare {
	case "index":
		return "real index"
	case "image":
		return "image"
	}
	return "absent"
}

func cellClass(ms []migrate.MemberRow) string {
	if len(ms) == 0 {
		return "none"
	}
	for _, m := range ms {
		if m.Included {
			return "in"
		}
	}
	return "out"
}
