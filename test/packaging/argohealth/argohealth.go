// Package argohealth runs the Argo CD health checks shipped in
// config/argocd/health the way Argo CD does: the object is handed to the
// kind's health.lua as the global `obj` in a gopher-lua state with the
// libraries Argo CD opens, and the table the script returns is the health.
//
// Tests elsewhere (the reconcilers') can call Assess on the objects they
// produce to show that Argo CD would report them as intended.
package argohealth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	lua "github.com/yuin/gopher-lua"
)

// Health statuses of Argo CD (github.com/argoproj/gitops-engine health).
const (
	Healthy     = "Healthy"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Suspended   = "Suspended"
	Missing     = "Missing"
	Unknown     = "Unknown"
)

// Group is the API group whose kinds have health checks here.
const Group = "sync.kommo-unisender.io"

// Status is what a health script returns.
type Status struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Dir is the directory holding <group>/<kind>/health.lua, found relative to
// this source file so any test package can use it.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "config", "argocd", "health")
}

// ScriptPath is the health.lua of kind.
func ScriptPath(kind string) string {
	return filepath.Join(Dir(), Group, kind, "health.lua")
}

// Assess runs kind's health.lua on obj: any value that marshals to a
// Kubernetes object, e.g. a typed CR or an unstructured map.
func Assess(kind string, obj any) (Status, error) {
	script, err := os.ReadFile(ScriptPath(kind))
	if err != nil {
		return Status{}, err
	}
	return Run(string(script), obj)
}

// Run evaluates a health script on obj.
func Run(script string, obj any) (Status, error) {
	object, err := toMap(obj)
	if err != nil {
		return Status{}, err
	}
	L := newState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, object))
	if err := L.DoString(script); err != nil {
		return Status{}, fmt.Errorf("health script: %w", err)
	}
	ret := L.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("health script returned %s, not a table", ret.Type())
	}
	st := Status{Status: luaString(table.RawGetString("status")), Message: luaString(table.RawGetString("message"))}
	switch st.Status {
	case Healthy, Progressing, Degraded, Suspended, Missing, Unknown:
		return st, nil
	default:
		return st, fmt.Errorf("health script returned status %q, which Argo CD does not know", st.Status)
	}
}

// newState opens what Argo CD's Lua VM opens (util/lua in argo-cd): package,
// base and table, and no string, io or os library, so a script that works
// here does not rely on anything Argo CD lacks.
func newState() *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	return L
}

// toMap round-trips obj through JSON, as Argo CD sees live objects (numbers
// become float64).
func toMap(obj any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// toLua converts decoded JSON into Lua values the way Argo CD does: objects
// and arrays become tables (arrays 1-based), numbers LNumber.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

func luaString(v lua.LValue) string {
	if v == lua.LNil {
		return ""
	}
	return v.String()
}
