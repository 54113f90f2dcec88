package mailbox

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
)

// lanes reports the mailbox's lane arrays and drainer state.
func (m *Mailbox[T]) lanes() (sys, user, spare int, running bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cap(m.sys), cap(m.user), cap(m.spare), m.running
}

// A mailbox that goes idle drops its lane arrays, with either kind of
// drainer, and a later burst still works (and is dropped again).
func TestIdleMailboxDropsLanes(t *testing.T) {
	for _, inline := range []int{0, 3} {
		t.Run(fmt.Sprintf("inline=%d", inline), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got []int
				var release chan struct{}
				m, err := New(func(v int) {
					if v%1000 == 0 {
						<-release // the first message of a burst holds the drainer
					}
					got = append(got, v)
				}, WithInlineDrain(inline))
				if err != nil {
					t.Fatal(err)
				}
				for burst := range 2 {
					base := burst * 1000
					release = make(chan struct{})
					go func() { _ = m.Post(base) }() // with inline drain the poster is the drainer
					synctest.Wait()                  // the drainer is blocked on the first message
					for i := 1; i <= 10; i++ {
						if err := m.Post(base + i); err != nil {
							t.Fatal(err)
						}
						if err := m.PostSystem(base + 100 + i); err != nil {
							t.Fatal(err)
						}
					}
					if sys, user, _, running := m.lanes(); sys == 0 || user == 0 || !running {
						t.Fatalf("burst %d: while busy: sys cap %d, user cap %d, running %v", burst, sys, user, running)
					}
					close(release)
					synctest.Wait() // every drainer has finished
					if sys, user, spare, running := m.lanes(); sys != 0 || user != 0 || spare != 0 || running {
						t.Fatalf("burst %d: idle mailbox keeps lanes: sys cap %d, user cap %d, spare cap %d, running %v",
							burst, sys, user, spare, running)
					}
				}
				var want []int
				for burst := range 2 {
					base := burst * 1000
					want = append(want, base)
					for i := 1; i <= 10; i++ {
						want = append(want, base+100+i) // the system lane goes first
					}
					for i := 1; i <= 10; i++ {
						want = append(want, base+i)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("order\n got %v\nwant %v", got, want)
				}
				m.Close()
				<-m.Stopped()
			})
		})
	}
}

// Under light traffic an inline mailbox hands each message to the handler
// without queuing it: no lane is allocated, none is kept.
func TestInlineIdlePostQueuesNothing(t *testing.T) {
	n := 0
	m, err := New(func(int) { n++ }, WithInlineDrain(4))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		_ = m.Post(1)
		_ = m.PostSystem(2)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per post to an idle mailbox", allocs)
	}
	if n != 202 {
		t.Errorf("handled %d messages, want 202", n)
	}
	if sys, user, spare, running := m.lanes(); sys != 0 || user != 0 || spare != 0 || running {
		t.Errorf("idle mailbox: sys cap %d, user cap %d, spare cap %d, running %v", sys, user, spare, running)
	}
	m.Close()
	<-m.Stopped()
}

// Stopped makes its channel on first use: an asker before the end gets a
// channel closed at the end (not before the last message is handled), a
// late asker a closed one, and an idle mailbox nobody asked holds none.
func TestLazyStopped(t *testing.T) {
	t.Run("asked before the end", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			handled := false
			m, err := New(func(int) { <-release; handled = true })
			if err != nil {
				t.Fatal(err)
			}
			early := m.Stopped()
			if early != m.Stopped() {
				t.Fatal("two Stopped calls returned different channels")
			}
			if err := m.Post(1); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			m.Close()
			afterClose := m.Stopped()
			if afterClose != early {
				t.Fatal("Stopped after Close returned another channel")
			}
			synctest.Wait()
			select {
			case <-early:
				t.Fatal("Stopped closed while a message is being handled")
			default:
			}
			close(release)
			<-early
			if !handled {
				t.Fatal("Stopped closed before the last message was handled")
			}
		})
	})
	t.Run("asked after the end", func(t *testing.T) {
		m, err := New(func(int) {})
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		made := m.stopped != nil
		m.mu.Unlock()
		if made {
			t.Fatal("New made the Stopped channel")
		}
		m.Close()
		select {
		case <-m.Stopped():
		default:
			t.Fatal("Stopped of a finished mailbox is not closed")
		}
		m.mu.Lock()
		made = m.stopped != nil
		m.mu.Unlock()
		if made {
			t.Fatal("Stopped made a channel for a finished mailbox")
		}
	})
	t.Run("racing Close", func(t *testing.T) {
		// Askers race the end of the mailbox: every channel they got must
		// be closed once it has stopped (run with -race).
		for range 50 {
			m, err := New(func(int) {}, WithInlineDrain(2))
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			chans := make([]<-chan struct{}, 8)
			for i := range chans {
				wg.Go(func() {
					_ = m.Post(i)
					chans[i] = m.Stopped()
				})
			}
			wg.Go(m.Close)
			wg.Wait()
			<-m.Stopped()
			for i, ch := range chans {
				select {
				case <-ch:
				default:
					t.Fatalf("asker %d got a channel that was never closed", i)
				}
			}
		}
	})
}
