package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestExampleConfig: docs/example-config.yaml parses strictly, sets every
// setting (in at least one element of each list), and is valid but for
// the pairs of alternatives it shows together.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("%s: %v", examplePath, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, it := range leaves() {
		parts := strings.Split(it.path, ".")
		if !written(doc.Content[0], parts) {
			t.Errorf("%s does not set %s", examplePath, it.path)
		}
		set := false
		at(reflect.ValueOf(c).Elem(), parts, func(v reflect.Value) { set = set || !v.IsZero() })
		if !set {
			t.Errorf("%s sets %s to its zero value", examplePath, it.path)
		}
	}
	const alternatives = "redis.passwordFile: set either password or passwordFile, not both\n" +
		"auth.token: set either auth.htpasswd or auth.token, not both"
	if err := c.Validate(); err == nil || err.Error() != alternatives {
		t.Errorf("Validate: %v, want only %q", err, alternatives)
	}
	htpasswd, token := *c, *c
	htpasswd.Auth.Token, htpasswd.Redis.PasswordFile = nil, ""
	token.Auth.Htpasswd, token.Redis.Password = "", ""
	if err := errors.Join(htpasswd.Validate(), token.Validate()); err != nil {
		t.Errorf("with one of each pair of alternatives: %v", err)
	}
}

// written reports whether the YAML mapping n has a key for path, in at
// least one element of each list on the way.
func written(n *yaml.Node, path []string) bool {
	if len(path) == 0 {
		return true
	}
	name, list := strings.CutSuffix(path[0], "[]")
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != name {
			continue
		}
		v := n.Content[i+1]
		if !list {
			return written(v, path[1:])
		}
		for _, e := range v.Content {
			if written(e, path[1:]) {
				return true
			}
		}
	}
	return false
}
