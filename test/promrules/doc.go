// Package promrules checks the chart's PrometheusRule and Grafana dashboard
// with Prometheus's own rule and PromQL parsers. It is a module of its own
// so that the operator's module does not depend on Prometheus's server
// code: `make test` runs it with the chart rendered by the pinned helm.
package promrules
