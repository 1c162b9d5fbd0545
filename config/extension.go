package config

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/duplex/duplex/realtime"
)

// Extension is what the server's features add to the configuration: the
// namespaces they bring, with their default options, and settings of their
// own. Load merges them with the core settings, so a feature's setting is
// read from the environment and flags, listed by -h, logged at start-up
// and validated (exit 2) like any other.
type Extension struct {
	// Name names the extension (a feature) in errors.
	Name string
	// Namespaces are default namespace options; NAMESPACES overrides any
	// field of them, and may add namespaces of its own. Two extensions
	// may not bring the same namespace.
	Namespaces realtime.Namespaces
	// Settings are the extension's own settings. Their environment names
	// and flags must not clash with the core's or each other's.
	Settings []Setting
}

// Setting is one setting an extension adds. Load sets Value from the
// environment, then from the flag, before anything else runs; afterwards
// the value is only read, so the variable behind Value may be read from
// any goroutine once Load has returned.
type Setting struct {
	// Env is the environment variable (UPPER_SNAKE_CASE, e.g.
	// TICKER_SIMULATOR) and Flag the matching flag (lower-kebab-case,
	// e.g. ticker-simulator).
	Env, Flag string
	// Usage says what the setting does, for -h.
	Usage string
	// Value holds the setting. Its String before Load is the default.
	Value flag.Value
	// Validate, when set, checks the loaded value; its error is reported
	// under Env, with the core settings' errors.
	Validate func() error
	// Secret settings show as *** in the start-up log.
	Secret bool
}

var (
	envNamePattern  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	flagNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// merge checks the extensions against the core settings and each other,
// and returns their namespaces and their settings.
func merge(exts []Extension) (realtime.Namespaces, []Setting, error) {
	namespaces := realtime.Namespaces{}
	broughtBy := map[string]string{}
	var out []Setting
	taken := map[string]bool{}
	for _, s := range settings() {
		taken[s.env], taken["-"+s.flag] = true, true
	}
	for _, ext := range exts {
		for name, o := range ext.Namespaces {
			if other, dup := broughtBy[name]; dup {
				return nil, nil, fmt.Errorf("namespace %q is brought by both %s and %s", name, other, ext.Name)
			}
			namespaces[name], broughtBy[name] = o, ext.Name
		}
		for _, s := range ext.Settings {
			switch {
			case !envNamePattern.MatchString(s.Env) || !flagNamePattern.MatchString(s.Flag):
				return nil, nil, fmt.Errorf("%s: setting %q (-%s): names must be UPPER_SNAKE and lower-kebab case", ext.Name, s.Env, s.Flag)
			case s.Value == nil:
				return nil, nil, fmt.Errorf("%s: setting %s has no value", ext.Name, s.Env)
			case taken[s.Env] || taken["-"+s.Flag]:
				return nil, nil, fmt.Errorf("%s: setting %s (-%s) is defined twice", ext.Name, s.Env, s.Flag)
			}
			taken[s.Env], taken["-"+s.Flag] = true, true
			out = append(out, s)
		}
	}
	return namespaces, out, nil
}

func (s Setting) asSetting() setting {
	return setting{
		env: s.Env, flag: s.Flag, usage: s.Usage, secret: s.Secret,
		get: func(*Config) string { return s.Value.String() },
		set: func(_ *Config, v string) error { return s.Value.Set(v) },
	}
}

// StringSetting binds a string variable; its current value is the default.
func StringSetting(env, flag, usage string, p *string) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Value: (*stringValue)(p)}
}

// BoolSetting binds a bool variable, written on/off, true/false or 1/0.
func BoolSetting(env, flag, usage string, p *bool) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Value: (*boolValue)(p)}
}

// IntSetting binds an int variable.
func IntSetting(env, flag, usage string, p *int) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Value: (*intValue)(p)}
}

// DurationSetting binds a duration variable, written like 500ms or 2s.
func DurationSetting(env, flag, usage string, p *time.Duration) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Value: (*durationValue)(p)}
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string {
	if *v {
		return "on"
	}
	return "off"
}

func (v *boolValue) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "1", "yes":
		*v = true
	case "off", "false", "0", "no":
		*v = false
	default:
		return errors.New("must be on or off")
	}
	return nil
}

// IsBoolFlag lets a bare "-ticker-simulator" mean on.
func (v *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	var n int
	if err := parseInt(s, &n); err != nil {
		return err
	}
	*v = intValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	var d time.Duration
	if err := parseDuration(s, &d); err != nil {
		return err
	}
	*v = durationValue(d)
	return nil
}
