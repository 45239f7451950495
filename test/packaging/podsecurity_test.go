package packaging

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const restrictedNamespace = "pss-restricted"

// Every workload's pod template, created as a Pod in a namespace enforcing
// Pod Security "restricted", is admitted; a template with one setting
// removed is not (so the namespace really enforces).
func TestPodSecurityRestricted(t *testing.T) {
	t.Parallel()
	env := applyCluster.get(t)
	env.createNamespaces(t, map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}, restrictedNamespace)

	sources := map[string][]byte{"kustomize": kustomize(t, repoPath("config", "default"))}
	for _, values := range ciValues {
		sources["helm-"+values] = renderCI(t, values)
	}
	// Which workloads each source must have: a source that lost one would
	// otherwise pass by having nothing to check.
	want := map[string]int{"kustomize": 2, "helm-defaults": 4, "helm-external": 2, "helm-full": 4}
	for source, manifests := range sources {
		pods := workloadPods(t, manifests)
		if len(pods) != want[source] {
			t.Errorf("%s: %d workloads, want %d", source, len(pods), want[source])
		}
		for workload, pod := range pods {
			t.Run(source+"/"+workload, func(t *testing.T) {
				pod.Name = strings.ToLower(source + "-" + strings.ReplaceAll(workload, "/", "-"))
				pod.Namespace = restrictedNamespace
				if err := env.client.Create(context.Background(), pod); err != nil {
					t.Fatalf("pod of %s refused: %v", workload, err)
				}
			})
		}
	}

	t.Run("control: privilege escalation allowed is refused", func(t *testing.T) {
		pods := workloadPods(t, sources["kustomize"])
		pod := pods["Deployment/kommo-unisender-worker"]
		if pod == nil {
			t.Fatal("kustomize has no worker Deployment")
		}
		pod.Name = "control-escalation"
		pod.Namespace = restrictedNamespace
		pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		err := env.client.Create(context.Background(), pod)
		if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Fatalf("want a PodSecurity refusal, got %v", err)
		}
	})
}

// workloadPods turns the pod template of every Deployment and StatefulSet in
// manifests into the Pod its controller would create, keyed "Kind/name".
func workloadPods(t *testing.T, manifests []byte) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	for _, o := range decodeManifests(t, manifests) {
		var tmpl corev1.PodTemplateSpec
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, o, &d)
			tmpl = d.Spec.Template
		case "StatefulSet":
			var s appsv1.StatefulSet
			fromUnstructured(t, o, &s)
			tmpl = s.Spec.Template
			// The StatefulSet controller adds a volume per claim template.
			for _, claim := range s.Spec.VolumeClaimTemplates {
				tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{
					Name: claim.Name,
					VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
						ClaimName: fmt.Sprintf("%s-%s-0", claim.Name, s.Name),
					}},
				})
			}
		default:
			continue
		}
		pods[o.GetKind()+"/"+o.GetName()] = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels, Annotations: tmpl.Annotations},
			Spec:       tmpl.Spec,
		}
	}
	return pods
}

func fromUnstructured(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}
