package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// debianPackages maps each service binary to the Debian package that ships it.
var debianPackages = map[string]string{
	"mariadbd":           "mariadb-server",
	"mariadb-install-db": "mariadb-server",
	"beanstalkd":         "beanstalkd",
}

// sbinDirs are searched too: Debian installs daemons in sbin, which a
// non-login root shell may not have on PATH.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// FindBinary returns the path of a service binary, searching PATH and the sbin
// directories.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %v", name, sbinDirs)
}

// EnsureBinaries installs the Debian packages of missing service binaries when
// running as root on Debian/Ubuntu, and otherwise says what to install.
func EnsureBinaries(names ...string) error {
	var missing []string
	pkgs := map[string]bool{}
	for _, name := range names {
		if _, err := FindBinary(name); err != nil {
			missing = append(missing, name)
			pkgs[debianPackages[name]] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	list := make([]string, 0, len(pkgs))
	for p := range pkgs {
		list = append(list, p)
	}
	if os.Geteuid() != 0 || !isDebian() {
		return fmt.Errorf("missing %v: install the packages %v (Debian/Ubuntu: apt-get install %v), or set MYSQL_DSN/BEANSTALKD_ADDR to running servers", missing, list, list)
	}
	fmt.Fprintf(os.Stderr, "testenv: installing %v with apt-get\n", list)
	if err := runLogged("apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, list...)
	if err := runLogged("apt-get", args...); err != nil {
		return fmt.Errorf("apt-get install %v: %w", list, err)
	}
	// The packages' post-install scripts may start system-wide daemons; our
	// tests never use them, and leaving them running costs memory and ports.
	for _, svc := range []string{"mariadb", "beanstalkd"} {
		_ = exec.Command("service", svc, "stop").Run()
	}
	for _, name := range missing {
		if _, err := FindBinary(name); err != nil {
			return errors.Join(fmt.Errorf("%s still missing after installing %v", name, list), err)
		}
	}
	return nil
}

func isDebian() bool {
	_, err := os.Stat("/etc/debian_version")
	return err == nil
}

func runLogged(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.Run()
}
