package widget_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"io/fs"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// widgetSrc is the widget's source directory, relative to this package.
const widgetSrc = "../../widget"

// maxImageBytes is Kommo's limit for each logo file.
const maxImageBytes = 300 << 10

var (
	wantLocales   = []string{"en", "es", "pt", "ru"}
	wantImages    = []string{"logo.png", "logo_main.png", "logo_medium.png", "logo_min.png", "logo_small.png"}
	settingsTypes = map[string]bool{"text": true, "pass": true, "users": true, "users_lp": true, "custom": true}
	// phraseCall finds the i18n keys script.js looks up with t('section.key').
	phraseCall = regexp.MustCompile(`\bt\('([a-z_]+\.[a-z_]+)'\)`)
	// anyPhraseCall finds every t( call, to catch keys that are not literals.
	anyPhraseCall = regexp.MustCompile(`\bt\(`)
)

// buildWidgetZip returns a function that packs src into a fresh archive with
// hack/widgetzip (built by `make test-binaries`) and returns its bytes.
func buildWidgetZip(t *testing.T) func(src string) []byte {
	t.Helper()
	bin := testenv.Tool(t, testenv.EnvWidgetZip)
	return func(src string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "widget.zip")
		if b, err := exec.Command(bin, "-src", src, "-out", out).CombinedOutput(); err != nil {
			t.Fatalf("widgetzip: %v\n%s", err, b)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
}

// copyWithOtherMetadata copies the widget sources in reverse order, with
// other permissions and modification times, plus a file that must stay out.
func copyWithOtherMetadata(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, "node_modules") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(files)))
	when := time.Date(2031, 7, 8, 9, 10, 11, 0, time.UTC)
	for _, p := range files {
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(target, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "notes.txt"), []byte("not part of the widget"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestWidgetZipIsReproducible(t *testing.T) {
	pack := buildWidgetZip(t)
	first := pack(widgetSrc)
	second := pack(widgetSrc)
	if !bytes.Equal(first, second) {
		t.Fatal("two builds of the same sources differ")
	}
	moved := pack(copyWithOtherMetadata(t, widgetSrc))
	if !bytes.Equal(first, moved) {
		t.Fatal("the archive depends on file order, permissions or modification times")
	}
}

// widgetArchive is the built archive, read back.
type widgetArchive struct {
	files map[string][]byte
	names []string
}

func openArchive(t *testing.T, data []byte) widgetArchive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	a := widgetArchive{files: map[string][]byte{}}
	for _, f := range zr.File {
		if f.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", f.Name, f.Mode().Perm())
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		a.files[f.Name] = b
		a.names = append(a.names, f.Name)
	}
	if !slices.IsSorted(a.names) {
		t.Errorf("entries are not sorted: %v", a.names)
	}
	return a
}

func (a widgetArchive) json(t *testing.T, name string, v any) {
	t.Helper()
	b, ok := a.files[name]
	if !ok {
		t.Fatalf("%s is missing from the archive", name)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type manifest struct {
	Widget struct {
		Name             string   `json:"name"`
		Description      string   `json:"description"`
		ShortDescription string   `json:"short_description"`
		Version          string   `json:"version"`
		InterfaceVersion int      `json:"interface_version"`
		InitOnce         *bool    `json:"init_once"`
		Locale           []string `json:"locale"`
		Installation     bool     `json:"installation"`
		Support          struct {
			Link  string `json:"link"`
			Email string `json:"email"`
		} `json:"support"`
	} `json:"widget"`
	Locations []string `json:"locations"`
	Settings  map[string]struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Required *bool  `json:"required"`
	} `json:"settings"`
}

func TestWidgetArchiveStructure(t *testing.T) {
	a := openArchive(t, buildWidgetZip(t)(widgetSrc))
	for _, name := range a.names {
		if strings.HasPrefix(name, "harness/") || strings.Contains(name, "node_modules") {
			t.Errorf("%s: test harness files must not ship", name)
		}
	}
	var m manifest
	a.json(t, "manifest.json", &m)
	checkManifest(t, m)

	keys := manifestPhraseKeys(m)
	scriptKeys := scriptPhraseKeys(t, a.files["script.js"])
	if len(scriptKeys) < 10 {
		t.Fatalf("found only %d phrase keys in script.js; the pattern no longer matches the code", len(scriptKeys))
	}
	keys = append(keys, scriptKeys...)
	checkLocales(t, a, m.Widget.Locale, keys)
	checkImages(t, a)
}

func checkManifest(t *testing.T, m manifest) {
	t.Helper()
	w := m.Widget
	if w.InterfaceVersion != 2 {
		t.Errorf("interface_version = %d, want 2", w.InterfaceVersion)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(w.Version) {
		t.Errorf("version %q is not MAJOR.MINOR.PATCH", w.Version)
	}
	if w.InitOnce == nil {
		t.Error("init_once is missing")
	}
	if !w.Installation {
		t.Error("installation must be true: the widget is installed from the integration")
	}
	got := slices.Sorted(slices.Values(w.Locale))
	if !slices.Equal(got, wantLocales) {
		t.Errorf("locale = %v, want %v", w.Locale, wantLocales)
	}
	if u, err := url.Parse(w.Support.Link); err != nil || u.Scheme != "https" || u.Host == "" {
		t.Errorf("support.link %q is not an https URL", w.Support.Link)
	}
	if _, err := mail.ParseAddress(w.Support.Email); err != nil {
		t.Errorf("support.email %q: %v", w.Support.Email, err)
	}
	if !slices.Contains(m.Locations, "settings") {
		t.Errorf("locations %v lack settings", m.Locations)
	}
	for key, s := range m.Settings {
		if !settingsTypes[s.Type] {
			t.Errorf("setting %s: type %q is not one Kommo knows", key, s.Type)
		}
		if s.Required == nil {
			t.Errorf("setting %s: required is missing", key)
		}
	}
	for key, typ := range map[string]string{"server_url": "text", "api_key": "pass", "list_title": "text"} {
		if s, ok := m.Settings[key]; !ok || s.Type != typ {
			t.Errorf("setting %s: want type %s, got %+v", key, typ, s)
		}
	}
	if s := m.Settings["api_key"]; s.Required == nil || !*s.Required {
		t.Error("api_key must be required")
	}
}

func manifestPhraseKeys(m manifest) []string {
	keys := []string{m.Widget.Name, m.Widget.Description, m.Widget.ShortDescription}
	for _, s := range m.Settings {
		keys = append(keys, s.Name)
	}
	return keys
}

func scriptPhraseKeys(t *testing.T, script []byte) []string {
	t.Helper()
	if len(script) == 0 {
		t.Fatal("script.js is missing or empty")
	}
	literal := phraseCall.FindAllSubmatch(script, -1)
	if all := anyPhraseCall.FindAll(script, -1); len(all) != len(literal)+1 { // +1: the definition
		t.Errorf("script.js has %d t( calls but %d with a literal key: keys must be literals", len(all)-1, len(literal))
	}
	keys := make([]string, 0, len(literal))
	for _, m := range literal {
		keys = append(keys, string(m[1]))
	}
	return keys
}

// checkLocales requires every key in every locale, and the same keys in all
// locale files (no phrase left behind in one language).
func checkLocales(t *testing.T, a widgetArchive, locales, keys []string) {
	t.Helper()
	var reference []string
	for _, loc := range locales {
		var phrases map[string]map[string]string
		a.json(t, "i18n/"+loc+".json", &phrases)
		var have []string
		for section, entries := range phrases {
			for k, v := range entries {
				if strings.TrimSpace(v) == "" {
					t.Errorf("%s: %s.%s is empty", loc, section, k)
				}
				have = append(have, section+"."+k)
			}
		}
		sort.Strings(have)
		for _, key := range keys {
			if _, ok := slices.BinarySearch(have, key); !ok {
				t.Errorf("%s: phrase %q is used but missing", loc, key)
			}
		}
		if reference == nil {
			reference = have
		} else if !slices.Equal(reference, have) {
			t.Errorf("%s has other phrase keys than %s", loc, locales[0])
		}
	}
}

func checkImages(t *testing.T, a widgetArchive) {
	t.Helper()
	for _, name := range wantImages {
		b, ok := a.files["images/"+name]
		if !ok {
			t.Errorf("images/%s is missing", name)
			continue
		}
		if len(b) > maxImageBytes {
			t.Errorf("images/%s is %d bytes, over Kommo's %d", name, len(b), maxImageBytes)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("images/%s is not a valid PNG: %v", name, err)
			continue
		}
		if r := img.Bounds(); r.Dx() < 16 || r.Dy() < 16 {
			t.Errorf("images/%s is only %dx%d", name, r.Dx(), r.Dy())
		}
	}
}
