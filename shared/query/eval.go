package query

import (
	"context"
	"sort"
)

// Index is what Eval reads instead of every node's facts: the names of all nodes, and for one
// fact path the scalar value (string, number or boolean) each node has there. A node whose
// facts have no scalar at the path (the key is missing, the value is null, an object or an
// array, or a value on the way is not an object) is absent from FactValues' answer.
type Index interface {
	NodeNames(ctx context.Context) ([]string, error)
	FactValues(ctx context.Context, path []string) (map[string]any, error)
}

// Eval returns the names of the nodes of idx that q matches, sorted — the nodes Select
// would return given every node with its facts — reading only the fact paths q compares,
// and the node names only when a comparison (!=, not, certname, an empty body) needs them.
// A nil q matches every node.
func (q *Query) Eval(ctx context.Context, idx Index) ([]string, error) {
	ev := &evaluator{ctx: ctx, idx: idx}
	var set nameSet
	var err error
	if q == nil || q.where == nil {
		set, err = ev.all()
	} else {
		set, err = ev.eval(q.where)
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

type nameSet map[string]struct{}

type evaluator struct {
	ctx      context.Context
	idx      Index
	universe nameSet // every node, read once when first needed
}

func (ev *evaluator) all() (nameSet, error) {
	if ev.universe != nil {
		return ev.universe, nil
	}
	names, err := ev.idx.NodeNames(ev.ctx)
	if err != nil {
		return nil, err
	}
	ev.universe = make(nameSet, len(names))
	for _, n := range names {
		ev.universe[n] = struct{}{}
	}
	return ev.universe, nil
}

// minus returns the nodes not in s.
func (ev *evaluator) minus(s nameSet) (nameSet, error) {
	all, err := ev.all()
	if err != nil {
		return nil, err
	}
	out := make(nameSet, max(0, len(all)-len(s)))
	for n := range all {
		if _, in := s[n]; !in {
			out[n] = struct{}{}
		}
	}
	return out, nil
}

func (ev *evaluator) eval(e expr) (nameSet, error) {
	switch x := e.(type) {
	case orExpr:
		out := nameSet{}
		for _, sub := range x {
			s, err := ev.eval(sub)
			if err != nil {
				return nil, err
			}
			for n := range s {
				out[n] = struct{}{}
			}
		}
		return out, nil
	case andExpr:
		var out nameSet
		for _, sub := range x {
			s, err := ev.eval(sub)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = make(nameSet, len(s))
				for n := range s {
					out[n] = struct{}{}
				}
				continue
			}
			for n := range out {
				if _, in := s[n]; !in {
					delete(out, n)
				}
			}
		}
		return out, nil
	case notExpr:
		s, err := ev.eval(x.x)
		if err != nil {
			return nil, err
		}
		return ev.minus(s)
	case cmpExpr:
		return ev.compare(x)
	}
	panic("query: unknown expression type") // the parser makes only the types above
}

// compare evaluates one comparison. != is the complement of =, so it is evaluated as such; the
// other operators hold only for a resolved scalar, which is what the index holds.
func (ev *evaluator) compare(c cmpExpr) (nameSet, error) {
	if c.op == opNe {
		eq := c
		eq.op = opEq
		s, err := ev.compare(eq)
		if err != nil {
			return nil, err
		}
		return ev.minus(s)
	}
	out := nameSet{}
	if c.path.facts == nil { // certname
		all, err := ev.all()
		if err != nil {
			return nil, err
		}
		for n := range all {
			if c.match(n, nil) {
				out[n] = struct{}{}
			}
		}
		return out, nil
	}
	values, err := ev.idx.FactValues(ev.ctx, c.path.facts)
	if err != nil {
		return nil, err
	}
	one := cmpExpr{path: path{facts: []string{"v"}}, op: c.op, lit: c.lit, re: c.re}
	for n, v := range values {
		if v != nil && one.match(n, map[string]any{"v": v}) {
			out[n] = struct{}{}
		}
	}
	return out, nil
}
