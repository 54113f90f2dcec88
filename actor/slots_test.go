package actor

import (
	"slices"
	"testing"
)

func TestSlots(t *testing.T) {
	var s slots[string, *int]
	vals := make([]*int, 5)
	for i := range vals {
		vals[i] = new(i)
	}
	keys := []string{"a", "b", "c", "d", "e"}
	check := func(want ...int) {
		t.Helper()
		if s.len() != len(want) {
			t.Fatalf("len %d, want %d", s.len(), len(want))
		}
		var got []int
		for v := range s.all() {
			got = append(got, *v)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("all %v, want %v", got, want)
		}
		for i, k := range keys {
			v, ok := s.get(k)
			if ok != slices.Contains(want, i) || ok && v != vals[i] {
				t.Fatalf("get(%q) = %v, %v", k, v, ok)
			}
		}
	}
	check()
	s.put("a", vals[0])
	if s.m != nil {
		t.Fatal("one entry made a map")
	}
	check(0)
	s.put("b", vals[1])
	s.put("c", vals[2])
	check(0, 1, 2)
	s.del("b")
	s.del("c")
	if s.m == nil {
		t.Fatal("the map was dropped while the field is in use")
	}
	check(0)
	s.del("a")
	if s.m != nil || s.k != "" || s.v != nil {
		t.Fatalf("empty set keeps %q %v %v", s.k, s.v, s.m)
	}
	check()
	// The field frees first; the next put takes it.
	s.put("a", vals[0])
	s.put("b", vals[1])
	s.del("a")
	s.put("c", vals[2])
	if s.k != "c" {
		t.Fatalf("field holds %q", s.k)
	}
	check(1, 2)
	s.del("x") // absent: no-op
	check(1, 2)
	// Deleting everything while ranging.
	s.put("d", vals[3])
	n := 0
	for v := range s.all() {
		n++
		s.del(keys[*v])
	}
	if n != 3 || s.len() != 0 || s.m != nil {
		t.Fatalf("ranged %d, len %d, map %v", n, s.len(), s.m)
	}
}
