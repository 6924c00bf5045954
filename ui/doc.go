// Package ui is the proxy's status page, served by `proxy serve` under
// /ui/: every repository's platform matrix at a glance, and why an image is
// or is not in an index.
//
// For one repository it shows a matrix of bare tags × platforms — the
// member tag and short digest in each cell, the variant shown — with the
// digest and media type clients get, the policy and required platforms
// that applied, the members left out and why (a config that says another
// platform, a duplicate, a platform still missing), what the bare tag holds
// upstream, and how old the cached tag list is; for one bare tag, the
// exact index JSON and the lines to paste per platform.
//
// The page and `proxy inspect --json` are made by the same code: the data
// is migrate.Inspect's Plan, computed through the proxy's own cache and
// resolver (migrate.Options.Live), so what the page says is what the proxy
// serves; /ui/api/... returns that Plan as JSON. The page is
// server-rendered (html/template: tag names and annotations are
// attacker-controlled text, escaped as such), works with JavaScript off,
// uses the registry API's authentication and read rules, and writes
// nothing.
package ui
