// The volume provisioner of the Kubernetes test bed's nodes: it gives each claim of a storage
// class whose provisioner is its name a local PersistentVolume (a directory on the node, which
// the kubelet chowns to the pod's fsGroup like a real disk), and when a volume of its own is
// released and its reclaim policy is Delete, it removes the directory and the volume. EKS's
// EBS CSI driver plays this part on AWS; this is the external-provisioner protocol of
// Kubernetes (the claim carries volume.kubernetes.io/storage-provisioner and, with
// WaitForFirstConsumer, volume.kubernetes.io/selected-node) with one node and local disks.
//
// Limits: one node per provisioner (claims selected for other nodes are left to theirs), no
// capacity accounting, no resizing, Filesystem volume mode only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

const (
	annProvisioner  = "volume.kubernetes.io/storage-provisioner"
	annSelectedNode = "volume.kubernetes.io/selected-node"
	annProvisioned  = "pv.kubernetes.io/provisioned-by"
)

type provisioner struct {
	client kubernetes.Interface
	name   string
	node   string
	dir    string
	pvcs   cache.Indexer
	pvs    cache.Indexer
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	name := flag.String("name", "vaultform.test/local", "the provisioner name storage classes give")
	node := flag.String("node", "", "the node whose disk the volumes are on")
	dir := flag.String("dir", "", "where the volumes' directories are made")
	flag.Parse()
	if *kubeconfig == "" || *node == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: provisioner --kubeconfig FILE --node NODE --dir DIR [--name NAME]")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("reading %s: %v", *kubeconfig, err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	pvcInformer := factory.Core().V1().PersistentVolumeClaims().Informer()
	pvInformer := factory.Core().V1().PersistentVolumes().Informer()
	p := &provisioner{
		client: client, name: *name, node: *node, dir: *dir,
		pvcs: pvcInformer.GetIndexer(), pvs: pvInformer.GetIndexer(),
	}
	// Every change is a reason to look at everything again: a test bed has a handful of
	// claims, and a full pass is what makes a missed or failed step converge.
	kick := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { nudge(kick) },
		UpdateFunc: func(any, any) { nudge(kick) },
		DeleteFunc: func(any) { nudge(kick) },
	}
	_, _ = pvcInformer.AddEventHandler(notify)
	_, _ = pvInformer.AddEventHandler(notify)
	ctx := context.Background()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	klog.Infof("provisioning %s volumes for node %s in %s", p.name, p.node, p.dir)
	retry := time.NewTicker(5 * time.Second)
	for {
		p.pass(ctx)
		select {
		case <-kick:
		case <-retry.C:
		}
	}
}

func nudge(kick chan struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}

func (p *provisioner) pass(ctx context.Context) {
	for _, o := range p.pvcs.List() {
		pvc := o.(*v1.PersistentVolumeClaim)
		if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil ||
			pvc.Annotations[annProvisioner] != p.name || pvc.Annotations[annSelectedNode] != p.node {
			continue
		}
		if err := p.provision(ctx, pvc); err != nil {
			klog.Errorf("provisioning %s/%s: %v", pvc.Namespace, pvc.Name, err)
		}
	}
	for _, o := range p.pvs.List() {
		pv := o.(*v1.PersistentVolume)
		if pv.Annotations[annProvisioned] != p.name || pv.Status.Phase != v1.VolumeReleased ||
			pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete {
			continue
		}
		if err := p.remove(ctx, pv); err != nil {
			klog.Errorf("deleting %s: %v", pv.Name, err)
		}
	}
}

func (p *provisioner) provision(ctx context.Context, pvc *v1.PersistentVolumeClaim) error {
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	sc, err := p.client.StorageV1().StorageClasses().Get(ctx, class, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading storage class %q: %w", class, err)
	}
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(path, 0o750); err != nil {
		return err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	mode := v1.PersistentVolumeFilesystem
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisioned: p.name},
		},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: pvc.Spec.Resources.Requests[v1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class,
			VolumeMode:                    &mode,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: path},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{p.node},
				}}}},
			}},
			ClaimRef: &v1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
		},
	}
	_, err = p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		klog.Infof("provisioned %s at %s for %s/%s", name, path, pvc.Namespace, pvc.Name)
	}
	return err
}

func (p *provisioner) remove(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.Local != nil && filepath.Dir(pv.Spec.Local.Path) == filepath.Clean(p.dir) {
		if err := os.RemoveAll(pv.Spec.Local.Path); err != nil {
			return err
		}
	}
	err := p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		klog.Infof("deleted %s", pv.Name)
	}
	return err
}
