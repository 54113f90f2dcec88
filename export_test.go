package wsactor

// DropForTest closes c's socket without a close frame, as a network failure
// would.
func DropForTest(c *Conn) error { return c.wc.Drop() }
