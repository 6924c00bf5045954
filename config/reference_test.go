package config

// The reference, docs/configuration.md, is generated from Fields and the
// doc comments of Config's types (go/ast), and checked like go/printer's
// golden files: `go test ./config -update` rewrites it. The tests here
// also hold the table and the doc comments to the struct, so none of the
// three can drift from the others.

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

const referencePath = "../docs/configuration.md"

// item is a field of Config or of one of its sections, as the file nests
// them.
type item struct {
	path  string // "upstreams[].url"
	field reflect.StructField
	owner reflect.Type // the struct that declares field
	depth int          // 0 for the fields of Config
	leaf  bool         // a setting, not a section or a list of sections
}

func walk(t reflect.Type, prefix string, depth int) []item {
	var out []item
	for i := range t.NumField() {
		f := t.Field(i)
		it := item{path: join(prefix, fieldName(f)), field: f, owner: t, depth: depth, leaf: isLeaf(f.Type)}
		out = append(out, it)
		if it.leaf {
			continue
		}
		sub, suffix := f.Type, ""
		for sub.Kind() == reflect.Pointer || sub.Kind() == reflect.Slice {
			if sub.Kind() == reflect.Slice {
				suffix = "[]"
			}
			sub = sub.Elem()
		}
		out = append(out, walk(sub, it.path+suffix, depth+1)...)
	}
	return out
}

func leaves() []item {
	var out []item
	for _, it := range walk(reflect.TypeFor[Config](), "", 0) {
		if it.leaf {
			out = append(out, it)
		}
	}
	return out
}

// valueType is what a setting holds: a pointer's element.
func valueType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// TestFieldsTable: Fields lists every setting of Config, in order, once;
// each default has the setting's type; variables and flags are unique.
func TestFieldsTable(t *testing.T) {
	t.Parallel()
	var want, got []string
	types := map[string]reflect.Type{}
	for _, it := range leaves() {
		want = append(want, it.path)
		types[it.path] = valueType(it.field.Type)
	}
	env, flags := map[string]bool{}, map[string]bool{}
	for _, f := range Fields() {
		got = append(got, f.Path)
		if f.Default != nil && reflect.TypeOf(f.Default) != types[f.Path] {
			t.Errorf("%s: default %#v is a %T, want a %v", f.Path, f.Default, f.Default, types[f.Path])
		}
		if f.Env != "" && (env[f.Env] || !strings.HasPrefix(f.Env, "MANIFOLD_")) {
			t.Errorf("%s: variable %s is not a new MANIFOLD_ name", f.Path, f.Env)
		}
		if f.Flag != "" && flags[f.Flag] {
			t.Errorf("%s: flag --%s twice", f.Path, f.Flag)
		}
		env[f.Env], flags[f.Flag] = true, true
	}
	if !slices.Equal(got, want) {
		t.Errorf("Fields() paths\n%s\nwant Config's settings in order\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A default filled in is the table's, and Set("") restores it.
	c := Default()
	for _, f := range Fields() {
		if f.Default == nil || strings.Contains(f.Path, "[]") {
			continue
		}
		at(reflect.ValueOf(c).Elem(), strings.Split(f.Path, "."), func(v reflect.Value) {
			if !reflect.DeepEqual(reflect.Indirect(v).Interface(), f.Default) {
				t.Errorf("Default().%s = %v, want %v", f.Path, reflect.Indirect(v), f.Default)
			}
		})
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// docs maps "config.Upstream" to that type's doc comment and
// "config.Upstream.URL" to that field's, for config and the library
// packages whose types Config uses.
func docs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for pkg, dir := range map[string]string{"config": ".", "index": "../index"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			collectDocs(f, pkg, out)
		}
	}
	return out
}

func collectDocs(f *ast.File, pkg string, out map[string]string) {
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE {
			continue
		}
		for _, s := range g.Specs {
			ts := s.(*ast.TypeSpec)
			doc := ts.Doc
			if doc == nil {
				doc = g.Doc
			}
			out[pkg+"."+ts.Name.Name] = doc.Text()
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, fl := range st.Fields.List {
				for _, n := range fl.Names {
					out[pkg+"."+ts.Name.Name+"."+n.Name] = fl.Doc.Text()
				}
			}
		}
	}
}

func docKey(t reflect.Type) string {
	return t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:] + "." + t.Name()
}

func fieldDoc(d map[string]string, it item) string {
	return d[docKey(it.owner)+"."+it.field.Name]
}

// TestDocCommentsStateDefaults: the doc comment of every setting states
// its default (or that it is required), and the default it states is the
// table's.
func TestDocCommentsStateDefaults(t *testing.T) {
	t.Parallel()
	d := docs(t)
	defaults := map[string]string{}
	for _, f := range Fields() {
		if f.Default != nil {
			defaults[f.Path] = defaultText(f.Default)
		}
	}
	for _, it := range leaves() {
		doc := strings.Join(strings.Fields(fieldDoc(d, it)), " ")
		switch def, ok := defaults[it.path]; {
		case doc == "":
			t.Errorf("%s (%s.%s) has no doc comment", it.path, docKey(it.owner), it.field.Name)
		case !strings.Contains(doc, "Default") && !strings.Contains(doc, "Required"):
			t.Errorf("%s: doc comment states no default: %q", it.path, doc)
		case ok && !strings.Contains(doc, "Default "+def) && !strings.Contains(doc, fmt.Sprintf("Default %q", def)):
			t.Errorf("%s: doc comment does not state the default %s: %q", it.path, def, doc)
		}
	}
}

func defaultText(v any) string {
	if l, ok := v.(slog.Level); ok {
		return strings.ToLower(l.String())
	}
	if m, ok := v.(interface{ MarshalText() ([]byte, error) }); ok {
		b, _ := m.MarshalText()
		return string(b)
	}
	return fmt.Sprint(v)
}

// typeNames name the value types in the reference; each has a section
// there, from its doc comment (or the text given here).
var typeNames = []struct {
	t    reflect.Type
	name string
	doc  string // for types whose doc comment is not about the file
}{
	{reflect.TypeFor[Address](), "address", ""},
	{reflect.TypeFor[Count](), "count", ""},
	{reflect.TypeFor[Duration](), "duration", ""},
	{reflect.TypeFor[LogFormat](), "log format", ""},
	{reflect.TypeFor[slog.Level](), "log level", "A log/slog level: debug, info, warn or error (any case; slog's offsets such as info+2 too)."},
	{reflect.TypeFor[Pattern](), "pattern", ""},
	{reflect.TypeFor[Platform](), "platform", ""},
	{reflect.TypeFor[BareTagPolicy](), "policy", ""},
	{reflect.TypeFor[Registry](), "registry", ""},
	{reflect.TypeFor[RegistryURL](), "registry URL", ""},
	{reflect.TypeFor[Size](), "size", ""},
	{reflect.TypeFor[TLSVersion](), "TLS version", ""},
	{reflect.TypeFor[URL](), "URL", ""},
}

// typeName is the reference's name for t, linked to its section.
func typeName(t *testing.T, typ reflect.Type) string {
	for _, n := range typeNames {
		if n.t == typ {
			return "[" + n.name + "](#" + anchor(n.name) + ")"
		}
	}
	switch typ.Kind() {
	case reflect.Pointer:
		return typeName(t, typ.Elem())
	case reflect.Slice:
		return "list of " + typeName(t, typ.Elem())
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Map:
		return "mapping"
	}
	t.Fatalf("the reference has no name for type %v: add it to typeNames", typ)
	return ""
}

func anchor(heading string) string {
	return strings.ReplaceAll(strings.ToLower(heading), " ", "-")
}

var quoted = regexp.MustCompile(`"[^"\s][^"]*"|` + "`[^`]*`")

// markdown is a doc comment as one Markdown paragraph: quoted strings
// become code, and what Markdown would take for HTML or emphasis is
// escaped.
func markdown(doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`)
	var b strings.Builder
	last := 0
	for _, m := range quoted.FindAllStringIndex(doc, -1) {
		b.WriteString(esc.Replace(doc[last:m[0]]))
		s := doc[m[0]:m[1]]
		if !strings.HasPrefix(s, "`") {
			s = "`" + s + "`"
		}
		b.WriteString(s)
		last = m[1]
	}
	b.WriteString(esc.Replace(doc[last:]))
	return b.String()
}
