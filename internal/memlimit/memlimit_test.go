package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestFromCgroup: the runtime's limit becomes 90% of the container's, from
// cgroup v2 or v1; no limit, or GOMEMLIMIT set, leaves it alone; a file
// that is not a size is an error.
func TestFromCgroup(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	cases := []struct {
		name, file, content string
		env                 string
		want                int64
		wantErr             bool
	}{
		{name: "v2", file: "memory.max", content: "134217728\n", want: 120795955},
		{name: "v2 unlimited", file: "memory.max", content: "max\n", want: 0},
		{name: "v1", file: "memory/memory.limit_in_bytes", content: "268435456\n", want: 241591910},
		{name: "v1 unlimited", file: "memory/memory.limit_in_bytes", content: "9223372036854771712\n", want: 0},
		{name: "GOMEMLIMIT wins", file: "memory.max", content: "134217728\n", env: "100MiB", want: 0},
		{name: "no cgroup", want: 0},
		{name: "garbage", file: "memory.max", content: "lots\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.env)
			debug.SetMemoryLimit(math.MaxInt64)
			root := t.TempDir()
			if tc.file != "" {
				path := filepath.Join(root, tc.file)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FromCgroup(root)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("FromCgroup = %d, %v; want %d (error: %v)", got, err, tc.want, tc.wantErr)
			}
			applied := debug.SetMemoryLimit(-1)
			if want := tc.want; want == 0 && applied != math.MaxInt64 || want != 0 && applied != want {
				t.Fatalf("runtime limit %d after FromCgroup returned %d", applied, tc.want)
			}
		})
	}
}
