package cluster

// KillForTest closes the node's NATS connection abruptly, without telling
// the other nodes, as the death of its process would.
func KillForTest(n *Node) { n.nc.Close() }
