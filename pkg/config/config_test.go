package config_test

import (
	"strings"
	"testing"

	"github.com/farmobs/farm/pkg/config"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// Every setting with a bad value is refused, naming its variable: nothing is silently taken as
// its default.
func TestBadValuesAreRefusedByName(t *testing.T) {
	for name, value := range map[string]string{
		"FARM_LOG_LEVEL":     "verbose",
		"FARM_LOG_FORMAT":    "pretty",
		"FARM_STATE_STORE":   "redis",
		"FARM_POLL_OVERLAP":  "five minutes",
		"FARM_LEASE_TTL":     "0s",
		"FARM_HTTP_RETRIES":  "-1",
		"FARM_TRACE_MAX_AGE": "1d",
	} {
		_, err := config.LoadFrom(lookup(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: err = %v, want it refused by name", name, value, err)
		}
	}
}

func TestLogSettings(t *testing.T) {
	c, err := config.LoadFrom(lookup(map[string]string{}))
	if err != nil || c.Common.LogLevel != "info" || c.Common.LogFormat != "json" {
		t.Fatalf("defaults: %+v, %v; want info and json", c.Common, err)
	}
	c, err = config.LoadFrom(lookup(map[string]string{"FARM_LOG_LEVEL": "WARN", "FARM_LOG_FORMAT": "text"}))
	if err != nil || c.Common.LogLevel != "warn" || c.Common.LogFormat != "text" {
		t.Fatalf("set: %+v, %v", c.Common, err)
	}
}
