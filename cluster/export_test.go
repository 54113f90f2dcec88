package cluster

// KillForTest closes the node's NATS connection abruptly, without telling
// the other nodes, as the death of its process would.
func KillForTest(n *Node) { n.nc.Close() }

// SetManifestPartForTest makes room asks send member lists in parts of n
// ids; the returned func restores the default.
func SetManifestPartForTest(n int) func() {
	old := manifestPart
	manifestPart = n
	return func() { manifestPart = old }
}
