package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// Field indexes of KommoIntegrations for the shared-app checks.
const (
	indexIntegrationApp      = "kommointegration.appRef"
	indexIntegrationClientID = "kommointegration.clientID"
)

// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommoapps,verbs=get;list;watch

// oauthCredentials resolves the client id, redirect URI and client secret:
// the integration's own, or those of the KommoApp it references (whose
// Secret is in the operator's namespace). The code exchange and every
// refresh need them.
func (r *KommoIntegrationReconciler) oauthCredentials(ctx context.Context, obj *v1alpha1.KommoIntegration) (kommo.OAuthCredentials, error) {
	if obj.Spec.AppRef != nil {
		return r.appCredentials(ctx, obj.Spec.AppRef.Name)
	}
	creds := kommo.OAuthCredentials{ClientID: obj.Spec.ClientID, RedirectURI: obj.Spec.RedirectURI}
	if obj.Spec.ClientSecretRef == nil {
		// The API server refuses such an object; be explicit anyway.
		return creds, outcome.Stall(v1alpha1.ReasonSecretNotFound, "spec.clientSecretRef is required with authorizationCodeRef and oauthCallback")
	}
	secret, err := r.userSecretValue(ctx, obj.Namespace, *obj.Spec.ClientSecretRef, "clientSecretRef")
	if err != nil {
		return creds, err
	}
	creds.ClientSecret = secret
	return creds, nil
}

// appCredentials reads the KommoApp name and its Secret. A missing app or
// Secret is a wait: the cluster admin may create them after the tenant.
func (r *KommoIntegrationReconciler) appCredentials(ctx context.Context, name string) (kommo.OAuthCredentials, error) {
	var app v1alpha1.KommoApp
	if err := r.Get(ctx, types.NamespacedName{Name: name}, &app); err != nil {
		if apierrors.IsNotFound(err) {
			return kommo.OAuthCredentials{}, outcome.Wait(r.waitRecheck(), v1alpha1.ReasonAppNotFound,
				"KommoApp %q (spec.appRef) not found; waiting for it", name)
		}
		return kommo.OAuthCredentials{}, fmt.Errorf("reading KommoApp %q: %w", name, err)
	}
	creds := kommo.OAuthCredentials{ClientID: app.Spec.ClientID, RedirectURI: app.Spec.RedirectURI}
	if r.OperatorNamespace == "" {
		return creds, outcome.Stall(v1alpha1.ReasonAppNotFound,
			"spec.appRef needs the manager's --operator-namespace (where the KommoApp's Secret lives); ask the cluster admin")
	}
	secret, err := r.userSecretValue(ctx, r.OperatorNamespace, app.Spec.ClientSecretRef, "clientSecretRef of KommoApp "+name)
	if err != nil {
		var w *outcome.Waiting
		if errors.As(err, &w) {
			// The tenant cannot see that namespace: say whom to ask.
			w.Reason, w.Message = v1alpha1.ReasonAppNotFound, "the client secret of KommoApp "+name+" is not available yet (the cluster admin provides it)"
		}
		return creds, err
	}
	creds.ClientSecret = secret
	return creds, nil
}

// noteSharedClientID sets the SharedClientID condition when integrations
// in other namespaces declare the same clientID with their own secret:
// anyone who can read one copy can sign widget tokens for the others'
// accounts, so the webhook server refuses widget writes for them.
func (r *KommoIntegrationReconciler) noteSharedClientID(ctx context.Context, obj *v1alpha1.KommoIntegration) {
	others, err := r.otherNamespacesWithClientID(ctx, obj)
	if err != nil {
		logf.FromContext(ctx).Info("could not check whether the clientID is shared", "error", err.Error())
		return
	}
	if len(others) == 0 {
		status.Remove(obj, v1alpha1.ConditionSharedClientID)
		return
	}
	msg := fmt.Sprintf("KommoIntegrations in other namespaces (%s) use clientID %s with their own copy of the client secret: "+
		"the widget cannot prove which tenant signed its requests and is refused; declare the app as a cluster-scoped KommoApp "+
		"(its Secret in the operator's namespace) and set spec.appRef instead of clientID", strings.Join(others, ", "), obj.Spec.ClientID)
	if !status.IsTrue(obj, v1alpha1.ConditionSharedClientID) {
		r.event(obj, corev1.EventTypeWarning, v1alpha1.ReasonSharedClientID, "Reconcile", "%s", msg)
	}
	status.MarkTrue(obj, v1alpha1.ConditionSharedClientID, v1alpha1.ReasonSharedClientID, "%s", msg)
}

func (r *KommoIntegrationReconciler) otherNamespacesWithClientID(ctx context.Context, obj *v1alpha1.KommoIntegration) ([]string, error) {
	if obj.Spec.ClientID == "" {
		return nil, nil
	}
	var list v1alpha1.KommoIntegrationList
	if err := r.List(ctx, &list, client.MatchingFields{indexIntegrationClientID: obj.Spec.ClientID}); err != nil {
		return nil, err
	}
	var out []string
	for _, ki := range list.Items {
		if ki.Namespace != obj.Namespace && !slices.Contains(out, ki.Namespace) {
			out = append(out, ki.Namespace)
		}
	}
	slices.Sort(out)
	return out, nil
}

// integrationsOfApp maps a KommoApp to the integrations that reference it.
func (r *KommoIntegrationReconciler) integrationsOfApp(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.KommoIntegrationList
		if err := c.List(ctx, &list, client.MatchingFields{indexIntegrationApp: o.GetName()}); err != nil {
			logf.FromContext(ctx).Error(err, "listing KommoIntegrations of a KommoApp", "app", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, ki := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ki)})
		}
		return reqs
	}
}

// indexAppAndClientID registers the two indexes.
func indexAppAndClientID(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &v1alpha1.KommoIntegration{}, indexIntegrationApp, func(o client.Object) []string {
		if ref := o.(*v1alpha1.KommoIntegration).Spec.AppRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &v1alpha1.KommoIntegration{}, indexIntegrationClientID, func(o client.Object) []string {
		if id := o.(*v1alpha1.KommoIntegration).Spec.ClientID; id != "" {
			return []string{id}
		}
		return nil
	})
}
