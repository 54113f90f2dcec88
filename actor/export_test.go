package actor

// WorkerIdle exports workerIdle to the pool tests.
const WorkerIdle = workerIdle

// SetExitHook makes p's workers call f when they are about to exit (after
// their idle time or Close, before they take the pool's mutex to give their
// slot back). Set it before the first TrySubmit.
func SetExitHook(p *Pool, f func()) { p.testExit = f }
