// Package testenv starts the real services the tests talk to — MariaDB,
// beanstalkd and an envtest control plane — as private processes, and gives
// tests the handles to reach them.
//
// `make test` runs the whole suite under hack/testenv, which starts one
// MariaDB and one beanstalkd for the run and exports MYSQL_DSN,
// BEANSTALKD_ADDR and KUBEBUILDER_ASSETS. Tests that need their own instance
// (to kill it, say) start one with StartMariaDB or StartBeanstalkd.
package testenv
