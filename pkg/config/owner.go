package config

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// LookupUser resolves a [[watch]] owner: a numeric uid is taken as it is
// (the user need not exist: a container's or a removed user's files keep
// their number), a name must exist in this host's user database.
func LookupUser(s string) (uint32, error) {
	return lookupID(s, "user", "uid", func(name string) (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

// LookupGroup resolves a [[watch]] group like LookupUser.
func LookupGroup(s string) (uint32, error) {
	return lookupID(s, "group", "gid", func(name string) (string, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func lookupID(s, what, idName string, lookup func(string) (string, error)) (uint32, error) {
	if strings.TrimSpace(s) != s || s == "" {
		return 0, fmt.Errorf("%q is not a %s name or %s", s, what, idName)
	}
	if s[0] >= '0' && s[0] <= '9' || s[0] == '-' || s[0] == '+' {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 1<<32-1 {
			return 0, fmt.Errorf("%q is not a valid %s (0 to 4294967294)", s, idName)
		}
		return uint32(n), nil
	}
	id, err := lookup(s)
	if err != nil {
		var uu user.UnknownUserError
		var ug user.UnknownGroupError
		if errors.As(err, &uu) || errors.As(err, &ug) {
			return 0, fmt.Errorf("no %s %q on this host (a numeric %s is accepted too)", what, s, idName)
		}
		return 0, fmt.Errorf("looking up %s %q: %w", what, s, err)
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q has a %s that is not a number: %q", what, s, idName, id)
	}
	return uint32(n), nil
}
