package proxy

// validName reports whether name is a repository name of the
// distribution spec's path grammar ("Pulling manifests": <name> is
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*,
// at most 255 characters). It is not the reference grammar: no domain, no
// port, no uppercase, no IPv6 literal. Written as a scan, not a regular
// expression: it runs on every request.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			if !validComponent(name[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

func validComponent(c string) bool {
	if c == "" || !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if alnum(c[i]) {
			i++
			continue
		}
		// A separator run between two alphanumerics: ".", "_", "__" or "-"+.
		j := i
		for j < len(c) && !alnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == "." || sep == "_" || sep == "__":
		case allDashes(sep):
		default:
			return false
		}
		i = j
	}
	return true
}

func alnum(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') }

func allDashes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			return false
		}
	}
	return true
}
