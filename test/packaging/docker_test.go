package packaging

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Docker build context, after .dockerignore, still holds every file the
// binary's packages need (sources, go:embed files, go.mod/go.sum): `go list`
// resolves the whole dependency graph, embed patterns included, in a copy of
// just that context. No Docker engine is needed.
func TestDockerBuildContext(t *testing.T) {
	ignore := readDockerignore(t, repoPath(".dockerignore"))
	ctxDir := t.TempDir()
	copied := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignore.excludes(rel) {
			if d.IsDir() && !ignore.hasExceptions {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		copied++
		return copyFile(path, filepath.Join(ctxDir, filepath.FromSlash(rel)))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"go.mod", "go.sum", "main.go"} {
		if _, err := os.Stat(filepath.Join(ctxDir, must)); err != nil {
			t.Errorf("the build context lacks %s", must)
		}
	}
	for _, mustNot := range []string{".git", "charts", "test", "hack"} {
		if _, err := os.Stat(filepath.Join(ctxDir, mustNot)); err == nil {
			t.Errorf("the build context carries %s", mustNot)
		}
	}
	// The Dockerfile's build: CGO off, the module at the context root.
	out, err := runInDir(ctxDir, []string{"CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly"},
		"go", "list", "-e", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}{{range .DepsErrors}}{{.}}{{end}}", ".")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("the build context (%d files) does not build: %v\n%s", copied, err, out)
	}
}

// devToolingPackage matches the packages only the dev and sandbox
// subcommands need: the test environment (it starts kube-apiserver and
// MariaDB), the API emulators and the whole system for `make dev`.
var devToolingPackage = regexp.MustCompile(`/internal/(testenv|sandbox|devenv|cli/dev|cli/sandbox)(/|$)`)

// The image's binary is built with the Dockerfile's build tags, and its
// package set holds none of the dev tooling; the default build (make dev,
// make test-binaries) still holds it, so the check is not vacuous.
func TestImageBinaryLeavesOutDevTooling(t *testing.T) {
	build := regexp.MustCompile(`go build ([^\n]*)`).FindStringSubmatch(string(readFile(t, repoPath("Dockerfile"))))
	if build == nil {
		t.Fatal("the Dockerfile has no go build line")
	}
	tags := regexp.MustCompile(`-tags[ =](\S+)`).FindStringSubmatch(build[1])
	if tags == nil {
		t.Fatalf("the Dockerfile builds without -tags, so with the dev tooling: %s", build[0])
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux"}
	if dev := devToolingIn(t, env, tags[1]); len(dev) > 0 {
		t.Errorf("the image's binary (-tags %s) holds the dev tooling:\n%s", tags[1], strings.Join(dev, "\n"))
	}
	if dev := devToolingIn(t, env, ""); len(dev) == 0 {
		t.Error("the default build holds no dev tooling: make dev has lost its subcommands, or this test's pattern is stale")
	}
}

// devToolingIn lists the dev tooling packages of the binary built with tags.
func devToolingIn(t *testing.T, env []string, tags string) []string {
	t.Helper()
	var dev []string
	for _, pkg := range depsOf(t, env, tags, ".") {
		if devToolingPackage.MatchString(pkg) {
			dev = append(dev, pkg)
		}
	}
	return dev
}

// depsOf lists the packages pkg (a pattern relative to the module root)
// builds from, itself included, with the build tags given.
func depsOf(t *testing.T, env []string, tags, pkg string) []string {
	t.Helper()
	out, err := runInDir(repoRoot, env, "go", "list", "-deps", "-tags", tags, pkg)
	if err != nil {
		t.Fatalf("go list -deps -tags %q %s: %v", tags, pkg, err)
	}
	return strings.Fields(out)
}

// The final image runs the binary as a numeric non-root user, so
// runAsNonRoot can be verified without reading /etc/passwd.
func TestDockerfileFinalStage(t *testing.T) {
	lines := strings.Split(string(readFile(t, repoPath("Dockerfile"))), "\n")
	var final []string
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = nil
		}
		final = append(final, l)
	}
	stage := strings.Join(final, "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/kommo-unisender"\]$`),
	} {
		if !want.MatchString(stage) {
			t.Errorf("final stage lacks %s:\n%s", want, stage)
		}
	}
	if !strings.Contains(string(readFile(t, repoPath("Dockerfile"))), "CGO_ENABLED=0") {
		t.Error("the binary is not built with CGO_ENABLED=0 (the final image has no libc)")
	}
}

// dockerignore holds .dockerignore patterns with Docker's semantics: paths
// relative to the context root, `*` and `?` within one path element, `**`
// across any number, a match on a directory excludes what is under it, `!`
// re-includes, and the last matching pattern wins.
type dockerignore struct {
	patterns      []ignorePattern
	hasExceptions bool
}

type ignorePattern struct {
	re        *regexp.Regexp
	exception bool
}

func readDockerignore(t *testing.T, path string) dockerignore {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var di dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if strings.HasPrefix(line, "!") {
			p.exception, di.hasExceptions = true, true
			line = line[1:]
		}
		line = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/")
		p.re = regexp.MustCompile("^" + globToRegexp(line) + "$")
		di.patterns = append(di.patterns, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return di
}

func globToRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// excludes reports whether rel (slash-separated) is left out of the context.
func (d dockerignore) excludes(rel string) bool {
	excluded := false
	for _, p := range d.patterns {
		if p.matchesOrParent(rel) {
			excluded = !p.exception
		}
	}
	return excluded
}

func (p ignorePattern) matchesOrParent(rel string) bool {
	for {
		if p.re.MatchString(rel) {
			return true
		}
		i := strings.LastIndex(rel, "/")
		if i < 0 {
			return false
		}
		rel = rel[:i]
	}
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

func runInDir(dir string, env []string, name string, args ...string) (string, error) {
	return runEnvDir(dir, env, nil, name, args...)
}
