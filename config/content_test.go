package config_test

import (
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/config"
)

func TestContentConfig(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if cc := c.Cache.Content; !*cc.Enabled || cc.MaxBytes != 10<<30 || cc.Driver != "" {
		t.Errorf("cache.content defaults: %+v", cc)
	}
	c, err := config.Parse(strings.NewReader(`cache: {content: {enabled: false, maxBytes: 1048576, driver: inmemory}}`))
	if err != nil || c.Validate() != nil {
		t.Fatalf("%v %v", err, c.Validate())
	}
	if cc := c.Cache.Content; *cc.Enabled || cc.MaxBytes != 1<<20 || cc.Driver != "inmemory" {
		t.Errorf("parsed: %+v", cc)
	}
	for yaml, field := range map[string]string{
		"cache: {content: {parameters: {a: b}}}":                 "cache.content.driver:",
		"cache: {content: {driver: filesystem}}":                 "cache.content.parameters.rootdirectory:",
		"cache: {content: {driver: filesystem, parameters: {}}}": "cache.content.parameters.rootdirectory:",
	} {
		c, err := config.Parse(strings.NewReader(yaml))
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", yaml, err, field)
		}
	}
	if _, err := config.Parse(strings.NewReader("cache: {content: {maxBytes: -1}}")); err == nil || !strings.Contains(err.Error(), "cache.content.maxBytes:") {
		t.Errorf("maxBytes -1: %v, want an error naming cache.content.maxBytes", err)
	}
}
