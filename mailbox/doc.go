// Package mailbox is a generic single-consumer queue: the mailbox of an actor.
//
// A [Mailbox] hands each message to one handler function, one message at a
// time. It has two lanes: a bounded user lane ([Mailbox.Post],
// [Mailbox.PostWait]) and an unbounded system lane ([Mailbox.PostSystem]) for
// control messages that must never be refused; the system lane is drained
// first, even in the middle of a user batch. The package knows nothing about
// the messages it carries.
//
// # Concurrency
//
// Any goroutine may post. At most one goroutine, the drainer, runs the handler
// at any time, so state touched only by the handler needs no lock: successive
// drainers are ordered by the mailbox's mutex. The drainer is started when a
// message reaches an idle mailbox and exits when both lanes are empty, so an
// idle mailbox owns no goroutine, and it drops its lane arrays too (this is
// what keeps 100,000 idle actors cheap). With [WithInlineDrain] the goroutine
// whose post found the mailbox idle may take the drainer role itself,
// handing it its message without queuing it, which saves a goroutine
// hand-off (and a lane array) per message under light traffic. How much it
// runs is the post's [Mode]: [Drain] (Post, PostWait and PostSystem) runs
// messages for up to the budget, whoever posted them; [Own] runs the
// poster's own message and nothing else (but what [WithOwnAlso] allows);
// [Handoff] runs nothing. A post in mode Own or Handoff never runs the
// handler on the posting goroutine for anyone else's message, except those
// the mailbox's owner declared safe with WithOwnAlso. A panic in the
// handler is recovered per message and reported to the panic handler; it
// never kills the drainer or the process.
//
// When a bound is hit: Post returns [ErrFull] at once; PostWait waits for room
// (or its context); PostSystem always succeeds until Close.
package mailbox
