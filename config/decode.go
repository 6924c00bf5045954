package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decode fills c from the YAML document b. It walks the document itself,
// rather than handing it to a generic decoder, for three reasons: every
// error names the field it is about ("upstreams[1].url: ..."), which no
// decoder does for the errors of a field's own parser; an unknown field is
// an error; and a scalar reaches its field's parser as written, so that
// `bareTag: off` is the policy off, not YAML 1.1's false. It goes on after
// an error, so that one run reports every bad field.
func decode(b []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), "", &errs)
	return errors.Join(errs...)
}

func decodeNode(n *yaml.Node, v reflect.Value, path string, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	fail := func(err error) {
		if path == "" {
			path = "configuration"
		}
		*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return // null, ~ or nothing: the zero value, the default
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			fail(errors.New("want a mapping"))
		} else if err := n.Decode(v.Addr().Interface()); err != nil {
			fail(err)
		}
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail(errors.New("want a list"))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		v.Set(s)
	case isLeaf(v.Type()):
		if n.Kind != yaml.ScalarNode {
			fail(errors.New("want a single value"))
		} else if err := setText(v, n.Value); err != nil {
			fail(err)
		}
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		decodeNode(n, v.Elem(), path, errs)
	case n.Kind != yaml.MappingNode:
		fail(errors.New("want a mapping of fields"))
	default:
		decodeFields(n, v, path, errs)
	}
}

func decodeFields(n *yaml.Node, v reflect.Value, path string, errs *[]error) {
	seen := map[int]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		j := fieldIndex(v.Type(), key)
		switch {
		case j < 0:
			*errs = append(*errs, fmt.Errorf("%s: unknown field", join(path, key)))
		case seen[j]:
			*errs = append(*errs, fmt.Errorf("%s: set twice", join(path, key)))
		default:
			seen[j] = true
			decodeNode(n.Content[i+1], v.Field(j), join(path, fieldName(v.Type().Field(j))), errs)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeaf reports whether a value of type t is one setting: it has a text
// form (or is a mapping handed to a library as is), as opposed to a
// section or a list of sections.
func isLeaf(t reflect.Type) bool {
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return true
	case t.Kind() == reflect.Pointer:
		return isLeaf(t.Elem())
	case t.Kind() == reflect.Slice:
		return isLeaf(t.Elem())
	}
	return t.Kind() != reflect.Struct
}

// fieldName is a field's name in the file: its json tag, or its Go name
// with a lower-case first letter (index.Grammar's fields have no tags).
func fieldName(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return strings.ToLower(f.Name[:1]) + f.Name[1:]
}

// fieldIndex finds the field named name in struct type t, ignoring case
// when no name matches exactly (as encoding/json does, which read the
// file before), or -1.
func fieldIndex(t reflect.Type, name string) int {
	fold := -1
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		switch n := fieldName(f); {
		case n == name:
			return i
		case fold < 0 && strings.EqualFold(n, name):
			fold = i
		}
	}
	return fold
}

// setText sets the setting v from its text: a YAML scalar, an environment
// variable, a flag. The empty text is the zero value.
func setText(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		if s == "" {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if s == "" {
		v.SetZero()
		return nil
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("a %s has no text form", v.Type())
	}
	return nil
}

// parseBool accepts strconv.ParseBool's forms and YAML 1.1's yes, no, on,
// off (which the file accepted before).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "y", "on":
		return true, nil
	case "no", "n", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%q: want true or false", s)
	}
	return b, nil
}
