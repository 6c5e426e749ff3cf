package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fromJSON(t *testing.T, s string) interface{} {
	t.Helper()
	var v interface{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The output go-yaml v2 (Helm's toYaml) gives for the same input.
func TestToYamlMatchesHelm(t *testing.T) {
	v := fromJSON(t, `{
		"runAsUser": 10001, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"},
		"capabilities": {"drop": ["ALL"]}, "empty": {}, "none": [], "nothing": null,
		"ratio": 0.5, "big": 1000000, "port": "8420", "yes": "yes", "blank": "",
		"wildcard": "*.example.com", "colon": "a: b", "hash": "a #b", "url": "https://x.example/a#b",
		"list": [{"name": "a", "value": "1"}, ["x", "y"], "z"],
		"text": "line one\nline two\n"
	}`)
	got, err := toYAML(v)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`big: 1000000`,
		`blank: ""`,
		`capabilities:`,
		`  drop:`,
		`  - ALL`,
		`colon: 'a: b'`,
		`empty: {}`,
		`hash: 'a #b'`,
		`list:`,
		`- name: a`,
		`  value: "1"`,
		`- - x`,
		`  - "y"`,
		`- z`,
		`none: []`,
		`nothing: null`,
		`port: "8420"`,
		`ratio: 0.5`,
		`runAsNonRoot: true`,
		`runAsUser: 10001`,
		`seccompProfile:`,
		`  type: RuntimeDefault`,
		`text: |`,
		`  line one`,
		`  line two`,
		`url: https://x.example/a#b`,
		`wildcard: '*.example.com'`,
		`"yes": "yes"`,
	}, "\n")
	if got != want {
		t.Fatalf("toYaml:\n%s\nwant:\n%s", got, want)
	}
}

func TestKeyOrderIsGoYamls(t *testing.T) {
	m := map[string]interface{}{"a10": 1, "a2": 1, "a-b": 1, "ab": 1, "B": 1, "a": 1}
	got := strings.Join(sortedKeys(m), " ")
	if want := "B a a-b a2 a10 ab"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func TestSprigFunctions(t *testing.T) {
	if got := quote("a\"b", nil, 8420.0, true); got != `"a\"b" "8420" "true"` {
		t.Errorf("quote: %s", got)
	}
	if got := dfault("d", ""); got != "d" {
		t.Errorf("default of empty: %v", got)
	}
	if got := dfault("d", 0.0); got != "d" {
		t.Errorf("default of 0: %v", got)
	}
	if got := dfault("d", []interface{}{}); got != "d" {
		t.Errorf("default of []: %v", got)
	}
	if got := dfault("d", false); got != "d" {
		t.Errorf("default of false: %v", got)
	}
	if got := dfault("d", "x"); got != "x" {
		t.Errorf("default of x: %v", got)
	}
	if got := trunc(3, "abcdef"); got != "abc" {
		t.Errorf("trunc: %s", got)
	}
	if got := trunc(-2, "abcdef"); got != "ef" {
		t.Errorf("trunc negative: %s", got)
	}
	if got := indent(2, "a\nb"); got != "  a\n  b" {
		t.Errorf("indent: %q", got)
	}
}

func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, "templates", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func renderChart(t *testing.T, files map[string]string, values string) (string, error) {
	t.Helper()
	dir := writeChart(t, files)
	in := `{"chart_dir": ` + mustJSON(dir) + `, "chart": {"Name": "c", "Version": "1.0.0", "AppVersion": "2"},
		"release": {"Name": "r", "Namespace": "n", "Service": "Helm", "IsInstall": true},
		"values": ` + values + `}`
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	return run(path, false)
}

func mustJSON(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStreamLikeHelmTemplate(t *testing.T) {
	out, err := renderChart(t, map[string]string{
		"_h.tpl":       `{{- define "n" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}`,
		"a.yaml":       "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"n\" . }}\n  x: {{ .Values.missing }}\n",
		"b.yaml":       "{{- if .Values.off }}\nkind: ConfigMap\n{{- end }}\n",
		"c.yaml":       "kind: Job\nmetadata:\n  annotations:\n    helm.sh/hook: pre-install\n---\napiVersion: v1\nkind: Secret\n---\n",
		"NOTES.txt":    "notes",
		"sub/d.yaml":   "kind: Service\n",
		"_ignored.tpl": "kind: ConfigMap\n",
	}, `{"off": false}`)
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n# Source: c/templates/c.yaml\napiVersion: v1\nkind: Secret\n" +
		"---\n# Source: c/templates/sub/d.yaml\nkind: Service\n" +
		"---\n# Source: c/templates/a.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: r-c\n  x:\n" +
		"---\n# Source: c/templates/c.yaml\nkind: Job\nmetadata:\n  annotations:\n    helm.sh/hook: pre-install\n"
	if out != want {
		t.Fatalf("stream:\n%s\nwant:\n%s", out, want)
	}
}

func TestRequiredFailsLikeHelm(t *testing.T) {
	_, err := renderChart(t, map[string]string{
		"a.yaml": "kind: Secret\ndata:\n  x: {{ required \"x is required\" .Values.x }}\n",
	}, `{}`)
	if err == nil {
		t.Fatal("rendered without the required value")
	}
	if got := helmError(err); got != "execution error at (c/templates/a.yaml:3:8): x is required" {
		t.Fatalf("error: %s", got)
	}
}

func TestUnknownFunctionIsRefusedAtParse(t *testing.T) {
	_, err := renderChart(t, map[string]string{"a.yaml": "x: {{ .Values.x | upper }}\n"}, `{"x": "a"}`)
	if err == nil || !strings.Contains(err.Error(), `function "upper" not defined`) {
		t.Fatalf("error: %v", err)
	}
}

func TestIncludeRecursionIsBounded(t *testing.T) {
	_, err := renderChart(t, map[string]string{
		"_h.tpl": `{{- define "loop" -}}{{ include "loop" . }}{{- end -}}`,
		"a.yaml": `{{ include "loop" . }}`,
	}, `{}`)
	if err == nil || !strings.Contains(err.Error(), "nested reference") {
		t.Fatalf("error: %v", err)
	}
}
