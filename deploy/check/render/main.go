// Command render renders deploy/helm/bulwark the way `helm template` does, for the offline checks
// of deploy/check (Helm is not installed where they run). Go's standard library only.
//
// Input: one JSON document (a file named by -in, or standard input), written by check.py:
//
//	{"chart_dir": "deploy/helm/bulwark",
//	 "chart":   {"Name": …, "Version": …, "AppVersion": …},  // from Chart.yaml
//	 "release": {"Name": …, "Namespace": …, "Service": "Helm", "IsInstall": true, …},
//	 "values":  {…}}                                         // values.yaml merged with overrides
//
// YAML is parsed on the Python side (the standard library has no YAML parser); numbers arrive as
// JSON numbers and become float64, as they do in Helm (sigs.k8s.io/yaml goes through JSON).
//
// Output: the manifests as one multi-document YAML stream, each document preceded by `---` and
// `# Source: <chart>/templates/<file>`, whitespace-only documents dropped, sorted by kind in
// Helm's install order, hooks (`helm.sh/hook`) after the other manifests, as `helm template`
// prints them. With -notes, the rendered NOTES.txt instead.
//
// Templates may use Go's text/template builtins and only these Helm/Sprig functions: include,
// toYaml, nindent, indent, quote, default, required, trunc, trimSuffix, b64enc. Any other
// function fails at parse time, so the chart cannot drift onto functions this renderer does not
// implement. A failure (a parse error, `required`, a type error) is printed on standard error in
// Helm's form, `Error: execution error at (<file>:<line>:<col>): <message>`, and exits 1.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

type input struct {
	ChartDir string                 `json:"chart_dir"`
	Chart    map[string]interface{} `json:"chart"`
	Release  map[string]interface{} `json:"release"`
	Values   map[string]interface{} `json:"values"`
}

// requiredMark tags the message of `required`, so that the error can be printed as Helm does.
const requiredMark = "\x00required\x00"

func main() {
	in := flag.String("in", "-", "input JSON file (- for standard input)")
	notes := flag.Bool("notes", false, "render templates/NOTES.txt instead of the manifests")
	flag.Parse()
	out, err := run(*in, *notes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", helmError(err))
		os.Exit(1)
	}
	fmt.Print(out)
}

func run(inPath string, notes bool) (string, error) {
	var raw []byte
	var err error
	if inPath == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(inPath)
	}
	if err != nil {
		return "", err
	}
	var doc input
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("input: %w", err)
	}
	name, _ := doc.Chart["Name"].(string)
	if name == "" {
		return "", errors.New("input: chart.Name is missing")
	}
	if doc.Values == nil {
		doc.Values = map[string]interface{}{}
	}
	files, err := templateFiles(filepath.Join(doc.ChartDir, "templates"))
	if err != nil {
		return "", err
	}
	root, err := parse(name, doc.ChartDir, files)
	if err != nil {
		return "", err
	}
	top := map[string]interface{}{
		"Values":  doc.Values,
		"Chart":   doc.Chart,
		"Release": doc.Release,
	}
	if notes {
		return renderOne(root, top, name+"/templates/NOTES.txt", name)
	}
	var manifests []manifest
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		path := name + "/templates/" + filepath.ToSlash(f)
		text, err := renderOne(root, top, path, name)
		if err != nil {
			return "", err
		}
		manifests = append(manifests, split(path, text)...)
	}
	return stream(manifests), nil
}

// templateFiles lists the files under dir, relative to it, sorted.
func templateFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// parse reads every template into one set, so that `define`s of any file (the helpers) are
// visible from every other, as in Helm.
func parse(name, chartDir string, files []string) (*template.Template, error) {
	var root *template.Template
	root = template.New("gotpl").Option("missingkey=zero").Funcs(funcs(&root))
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join(chartDir, "templates", f))
		if err != nil {
			return nil, err
		}
		path := name + "/templates/" + filepath.ToSlash(f)
		if _, err := root.New(path).Parse(string(text)); err != nil {
			return nil, fmt.Errorf("parse error at (%s): %s", path, strings.TrimPrefix(err.Error(), "template: "))
		}
	}
	return root, nil
}

func renderOne(root *template.Template, top map[string]interface{}, path, name string) (string, error) {
	data := make(map[string]interface{}, len(top)+1)
	for k, v := range top {
		data[k] = v
	}
	data["Template"] = map[string]interface{}{"Name": path, "BasePath": name + "/templates"}
	var b strings.Builder
	if err := root.ExecuteTemplate(&b, path, data); err != nil {
		return "", err
	}
	// Helm's engine prints a missing value as nothing.
	return strings.ReplaceAll(b.String(), "<no value>", ""), nil
}

var execErr = regexp.MustCompile(`^template: ([^:]+:\d+:\d+): (?s:.*)$`)

// helmError writes a failure as Helm does: `execution error at (file:line:col): message` for
// `required`, the template's own message otherwise.
func helmError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, requiredMark); i >= 0 {
		text := msg[i+len(requiredMark):]
		if m := execErr.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("execution error at (%s): %s", m[1], text)
		}
		return "execution error: " + text
	}
	return strings.TrimPrefix(msg, "template: ")
}

// --- the functions -------------------------------------------------------------------------

func funcs(root **template.Template) template.FuncMap {
	depth := map[string]int{}
	return template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			if depth[name] > 1000 {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			depth[name]++
			defer func() { depth[name]-- }()
			var b strings.Builder
			if err := (*root).ExecuteTemplate(&b, name, data); err != nil {
				return "", err
			}
			return b.String(), nil
		},
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(requiredMark + warn)
			}
			if s, ok := val.(string); ok && s == "" {
				return val, errors.New(requiredMark + warn)
			}
			return val, nil
		},
		"toYaml":     toYAML,
		"indent":     indent,
		"nindent":    func(spaces int, v string) string { return "\n" + indent(spaces, v) },
		"quote":      quote,
		"default":    dfault,
		"trunc":      trunc,
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	}
}

// indent is Sprig's: every line, the first included, gets `spaces` spaces.
func indent(spaces int, v string) string {
	pad := strings.Repeat(" ", spaces)
	return pad + strings.ReplaceAll(v, "\n", "\n"+pad)
}

// quote is Sprig's: each non-nil argument as a Go-quoted string, joined by spaces.
func quote(args ...interface{}) string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a != nil {
			out = append(out, strconv.Quote(strval(a)))
		}
	}
	return strings.Join(out, " ")
}

func strval(v interface{}) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	case error:
		return s.Error()
	case fmt.Stringer:
		return s.String()
	default:
		return fmt.Sprintf("%v", v)
	}
}

// dfault is Sprig's `default`: the value unless it is empty (nil, false, 0, "", an empty list
// or map), else the default.
func dfault(d interface{}, given ...interface{}) interface{} {
	if len(given) == 0 || empty(given[0]) {
		return d
	}
	return given[0]
}

func empty(v interface{}) bool {
	g := reflect.ValueOf(v)
	if !g.IsValid() {
		return true
	}
	switch g.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map, reflect.String:
		return g.Len() == 0
	case reflect.Bool:
		return !g.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return g.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return g.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return g.Float() == 0
	case reflect.Complex64, reflect.Complex128:
		return g.Complex() == 0
	case reflect.Struct:
		return false
	case reflect.Ptr, reflect.Interface, reflect.Chan, reflect.Func:
		return g.IsNil()
	}
	return false
}

// trunc is Sprig's: the first c bytes (the last -c for a negative c).
func trunc(c int, s string) string {
	if c < 0 && len(s)+c > 0 {
		return s[len(s)+c:]
	}
	if c >= 0 && len(s) > c {
		return s[:c]
	}
	return s
}

// --- toYaml --------------------------------------------------------------------------------
//
// Helm's toYaml is sigs.k8s.io/yaml: JSON, then go-yaml v2. So: map keys in go-yaml's order,
// two-space indentation, a sequence under a key not indented, strings quoted only when a plain
// scalar would read as something else, whole numbers without a decimal point, and no trailing
// newline.

func toYAML(v interface{}) (string, error) {
	norm, err := normalise(v)
	if err != nil {
		return "", err
	}
	return strings.Join(node(norm), "\n"), nil
}

// normalise goes through JSON as sigs.k8s.io/yaml does (structs to maps, numbers to float64).
func normalise(v interface{}) (interface{}, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("toYaml: %w", err)
	}
	var out interface{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("toYaml: %w", err)
	}
	return out, nil
}

// node renders a value as lines at indentation zero.
func node(v interface{}) []string {
	switch t := v.(type) {
	case map[string]interface{}:
		if len(t) == 0 {
			return []string{"{}"}
		}
		var lines []string
		for _, k := range sortedKeys(t) {
			key := scalar(k)
			child := t[k]
			switch c := child.(type) {
			case map[string]interface{}:
				if len(c) > 0 {
					lines = append(lines, key+":")
					lines = append(lines, prefix(node(c), "  ", "  ")...)
					continue
				}
			case []interface{}:
				if len(c) > 0 {
					lines = append(lines, key+":")
					lines = append(lines, node(c)...)
					continue
				}
			}
			lines = append(lines, inline(key+":", child)...)
		}
		return lines
	case []interface{}:
		if len(t) == 0 {
			return []string{"[]"}
		}
		var lines []string
		for _, item := range t {
			switch c := item.(type) {
			case map[string]interface{}:
				if len(c) > 0 {
					lines = append(lines, prefix(node(c), "- ", "  ")...)
					continue
				}
			case []interface{}:
				if len(c) > 0 {
					lines = append(lines, prefix(node(c), "- ", "  ")...)
					continue
				}
			}
			lines = append(lines, inline("-", item)...)
		}
		return lines
	default:
		return inline("", v)
	}
}

// inline renders a scalar (or an empty collection) after `head` (`key:` or `-`).
func inline(head string, v interface{}) []string {
	sep := " "
	if head == "" {
		sep = ""
	}
	switch t := v.(type) {
	case nil:
		return []string{head + sep + "null"}
	case bool:
		return []string{head + sep + strconv.FormatBool(t)}
	case float64:
		return []string{head + sep + number(t)}
	case string:
		if block, ok := literal(t); ok {
			return append([]string{head + sep + block[0]}, prefix(block[1:], "  ", "  ")...)
		}
		return []string{head + sep + scalar(t)}
	case map[string]interface{}:
		return []string{head + sep + "{}"}
	case []interface{}:
		return []string{head + sep + "[]"}
	default:
		return []string{head + sep + scalar(fmt.Sprintf("%v", v))}
	}
}

func prefix(lines []string, first, rest string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		p := rest
		if i == 0 {
			p = first
		}
		if l == "" && i > 0 {
			out[i] = ""
		} else {
			out[i] = p + l
		}
	}
	return out
}

func number(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// literal renders a multi-line string as a literal block (`|`, `|-` or `|+` and its lines).
func literal(s string) ([]string, bool) {
	if !strings.Contains(s, "\n") || strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\n") {
		return nil, false
	}
	chomp := "-"
	body := s
	if strings.HasSuffix(s, "\n") {
		body = strings.TrimSuffix(s, "\n")
		chomp = ""
		if strings.HasSuffix(body, "\n") {
			chomp = "+"
		}
	}
	for _, r := range s {
		if r != '\n' && r != '\t' && !unicode.IsPrint(r) {
			return nil, false
		}
	}
	return append([]string{"|" + chomp}, strings.Split(body, "\n")...), true
}

var (
	yamlInt      = regexp.MustCompile(`^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*)$`)
	yamlFloat    = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$`)
	yamlSpecial  = regexp.MustCompile(`^([-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$`)
	base60Float  = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)
	yamlTimstamp = regexp.MustCompile(`^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?$`)
	yamlWords    = map[string]bool{
		"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
		"true": true, "True": true, "TRUE": true, "n": true, "N": true, "no": true, "No": true,
		"NO": true, "off": true, "Off": true, "OFF": true, "false": true, "False": true, "FALSE": true,
		"~": true, "null": true, "Null": true, "NULL": true, "<<": true,
	}
)

// scalar writes a one-line string: plain when go-yaml would read it back as this string,
// double-quoted when a plain scalar would be another type, single-quoted when a plain scalar is
// not allowed (indicators, surrounding spaces), double-quoted with escapes otherwise.
func scalar(s string) string {
	if s == "" || yamlWords[s] || yamlInt.MatchString(s) || yamlFloat.MatchString(s) ||
		yamlSpecial.MatchString(s) || base60Float.MatchString(s) || yamlTimstamp.MatchString(s) {
		return doubleQuoted(s)
	}
	plain, single := analyse(s)
	switch {
	case plain:
		return s
	case single:
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	default:
		return doubleQuoted(s)
	}
}

// analyse is libyaml's yaml_emitter_analyze_scalar, reduced to the block context: whether the
// string may be written plain, and whether single quotes may hold it.
func analyse(s string) (plain, single bool) {
	if !utf8.ValidString(s) {
		return false, false
	}
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		return false, true
	}
	runes := []rune(s)
	blank := func(i int) bool {
		return i >= len(runes) || runes[i] == ' ' || runes[i] == '\t' || runes[i] == '\n' || runes[i] == '\r'
	}
	indicators, special, breaks := false, false, false
	for i, c := range runes {
		if i == 0 {
			switch c {
			case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
				indicators = true
			case '?', ':', '-':
				if blank(i + 1) {
					indicators = true
				}
			}
		} else {
			switch c {
			case ':':
				if blank(i + 1) {
					indicators = true
				}
			case '#':
				if blank(i - 1) {
					indicators = true
				}
			}
		}
		if c == '\n' || c == '\r' {
			breaks = true
		} else if c != '\t' && !unicode.IsPrint(c) {
			special = true
		}
	}
	edges := runes[0] == ' ' || runes[len(runes)-1] == ' ' || runes[0] == '\t' || runes[len(runes)-1] == '\t'
	plain = !indicators && !special && !breaks && !edges
	single = !special && !breaks
	return plain, single
}

func doubleQuoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sortedKeys orders keys as go-yaml v2 does (keyList.Less): letters compare as runes, a
// non-letter sorts before a letter, and runs of digits compare as numbers.
func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	return keys
}

func keyLess(a, b string) bool {
	ar, br := []rune(a), []rune(b)
	for i := 0; i < len(ar) && i < len(br); i++ {
		if ar[i] == br[i] {
			continue
		}
		al, bl := unicode.IsLetter(ar[i]), unicode.IsLetter(br[i])
		if al && bl {
			return ar[i] < br[i]
		}
		if al || bl {
			return bl
		}
		var ai, bi int
		var an, bn int64
		if ar[i] == '0' || br[i] == '0' {
			for j := i - 1; j >= 0 && unicode.IsDigit(ar[j]); j-- {
				if ar[j] != '0' {
					an, bn = 1, 1
					break
				}
			}
		}
		for ai = i; ai < len(ar) && unicode.IsDigit(ar[ai]); ai++ {
			an = an*10 + int64(ar[ai]-'0')
		}
		for bi = i; bi < len(br) && unicode.IsDigit(br[bi]); bi++ {
			bn = bn*10 + int64(br[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return ar[i] < br[i]
	}
	return len(ar) < len(br)
}

// --- the stream ----------------------------------------------------------------------------

type manifest struct {
	path, text, kind string
	hook             bool
}

// separator is Helm's (releaseutil.SplitManifests).
var (
	separator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)
	kindLine  = regexp.MustCompile(`(?m)^kind:\s*["']?([A-Za-z0-9]+)`)
	hookLine  = regexp.MustCompile(`(?m)^\s+["']?helm\.sh/hook["']?:`)
)

func split(path, text string) []manifest {
	var out []manifest
	for _, d := range separator.Split(strings.TrimSpace(text), -1) {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		m := manifest{path: path, text: d, hook: hookLine.MatchString(d)}
		if k := kindLine.FindStringSubmatch(d); k != nil {
			m.kind = k[1]
		}
		out = append(out, m)
	}
	return out
}

// installOrder is Helm's InstallOrder; other kinds follow, by name.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

func stream(ms []manifest) string {
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	less := func(a, b manifest) bool {
		if a.hook != b.hook {
			return !a.hook
		}
		ra, oka := rank[a.kind]
		rb, okb := rank[b.kind]
		switch {
		case oka && okb:
			return ra < rb
		case oka != okb:
			return oka
		default:
			return a.kind < b.kind
		}
	}
	sort.SliceStable(ms, func(i, j int) bool { return less(ms[i], ms[j]) })
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.path, m.text)
	}
	return b.String()
}
