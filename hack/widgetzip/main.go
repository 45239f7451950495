// Command widgetzip packs the Kommo widget sources into the archive Kommo
// accepts, reproducibly: the same sources give the same bytes, whatever the
// files' modification times, permissions or the order the file system lists
// them in.
//
//	go run ./hack/widgetzip -src widget -out dist/widget.zip
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// packed are the top-level entries of the widget directory that go into the
// archive; everything else (the browser-test harness, node_modules) stays out.
var packed = map[string]bool{
	"manifest.json": true,
	"script.js":     true,
	"style.css":     true,
	"i18n":          true,
	"images":        true,
	"templates":     true,
}

// fixedTime is every entry's modification time, so that a checkout's mtimes
// never change the archive.
var fixedTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	src := flag.String("src", "widget", "widget source directory")
	out := flag.String("out", "dist/widget.zip", "archive to write")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "widgetzip:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	names, err := widgetFiles(src)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no widget files in %s", src)
	}
	archive, err := pack(src, names)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return err
	}
	return os.WriteFile(out, archive, 0o600)
}

// widgetFiles lists the files to pack as slash-separated paths relative to
// src, sorted.
func widgetFiles(src string) ([]string, error) {
	var names []string
	err := fs.WalkDir(os.DirFS(src), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		top, _, _ := strings.Cut(p, "/")
		if !packed[top] {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// pack writes the files into a zip with fixed times and permissions.
func pack(src string, names []string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		h := &zip.FileHeader{Name: path.Clean(name), Method: zip.Deflate, Modified: fixedTime}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
