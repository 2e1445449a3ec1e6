// The pod sandbox's process of the Kubernetes test bed's nodes: holds the pod's namespaces
// and does nothing until it is told to stop, as the pause image of a real node does. No
// registry is reachable here, so scripts/testbed builds this into the node's sandbox image
// (containerd's sandbox_image); see docs/testbed.md.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
