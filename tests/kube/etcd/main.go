// The etcd server of the Kubernetes test bed: etcd's own command line (etcdmain), built from the
// etcd version that k8s.io/kubernetes requires, because Debian's etcd-server (3.4) is older than
// the 3.5 the API server expects. scripts/testbed kube-build builds it; see docs/testbed.md.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
