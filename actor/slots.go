package actor

import "iter"

// slots is a map that keeps its first entry in a field of its own. A
// connection with one request in flight at a time (one caller, or 1,000
// connections with one request each) never makes the map, and the map is
// dropped once the set is empty, so an idle connection keeps none (Go maps
// never shrink: a map kept after the first request cost ~250 B per idle
// connection).
//
// Dropping the map whenever it alone became empty was measured: with one
// request in flight at a time, a map was made for every request on both
// sides (+4 allocations and +500 B per round trip). The map is made again
// only when the set went empty after holding two or more.
//
// The zero value is an empty set. V is a pointer type; its zero value marks
// the field free. Not safe for concurrent use: the actor's loop owns it.
type slots[K comparable, V comparable] struct {
	k K
	v V
	m map[K]V
}

func (s *slots[K, V]) get(k K) (V, bool) {
	var zero V
	if s.v != zero && s.k == k {
		return s.v, true
	}
	v, ok := s.m[k]
	return v, ok
}

// put adds k, which must not be in s.
func (s *slots[K, V]) put(k K, v V) {
	var zero V
	if s.v == zero {
		s.k, s.v = k, v
		return
	}
	if s.m == nil {
		s.m = make(map[K]V)
	}
	s.m[k] = v
}

func (s *slots[K, V]) del(k K) {
	var zero V
	var zk K
	if s.v != zero && s.k == k {
		s.k, s.v = zk, zero // drop the key too: it may hold a buffer
	} else {
		delete(s.m, k)
	}
	if s.v == zero && len(s.m) == 0 {
		s.m = nil
	}
}

func (s *slots[K, V]) len() int {
	var zero V
	if s.v != zero {
		return len(s.m) + 1
	}
	return len(s.m)
}

// all yields every value. The loop body may delete any entry.
func (s *slots[K, V]) all() iter.Seq[V] {
	return func(yield func(V) bool) {
		var zero V
		if v := s.v; v != zero && !yield(v) {
			return
		}
		for _, v := range s.m {
			if !yield(v) {
				return
			}
		}
	}
}
