package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/config"
)

// A URL with credentials is refused at start, naming the variable and the setting to use instead,
// and the message never repeats the password.
func TestURLWithCredentialsIsRefused(t *testing.T) {
	for _, c := range []struct {
		name, value, hint string
	}{
		{"FARM_ARGO_URL", "http://user:secret@argo.example.com:2746", "FARM_ARGO_TOKEN"},
		{"FARM_ARGO_URL", "https://secret@argo.example.com", "FARM_ARGO_TOKEN"},
		{"FARM_ARGO_UI_URL", "https://user:secret@argo-ui.example.com/", "takes none"},
		{"FARM_AIRFLOW_URL", "https://admin:secret@airflow.example.com/", "FARM_AIRFLOW_PASSWORD"},
		{"FARM_AIRFLOW_UI_URL", "https://admin:secret@airflow.example.com/", "takes none"},
		{"FARM_BIGQUERY_ENDPOINT", "http://u:secret@127.0.0.1:9050", "takes none"},
		// Not a valid URL either: still never echoed with the secret.
		{"FARM_ARGO_URL", "http://user:sec ret%zz@argo.example.com", ""},
	} {
		t.Run(c.name+" "+c.value, func(t *testing.T) {
			env := map[string]string{c.name: c.value, "FARM_BIGQUERY_DATASET": "farm"}
			_, err := config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err == nil {
				t.Fatalf("%s=%s accepted", c.name, c.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.name) || !strings.Contains(msg, c.hint) {
				t.Errorf("error %q does not name %s and %q", msg, c.name, c.hint)
			}
			if strings.Contains(msg, "secret") || strings.Contains(msg, "sec ret") {
				t.Errorf("error repeats the credentials: %q", msg)
			}
		})
	}
	// Without credentials the same URLs are fine, and an @ in the path is no user info.
	env := map[string]string{"FARM_ARGO_URL": "https://argo.example.com:2746/argo/@team", "FARM_AIRFLOW_URL": "https://airflow.example.com/"}
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || cfg.Argo.URL == nil || cfg.Airflow.URL == nil {
		t.Fatalf("URLs without credentials: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:pw@host:1/p?q=a@b": "http://REDACTED@host:1/p?q=a@b",
		"https://host/a@b":              "https://host/a@b",
		"user:pw@host":                  "REDACTED@host",
		"https://a@b@host/x":            "https://REDACTED@host/x",
	} {
		if got := config.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The store and agent deadlines come from the settings and must be positive.
func TestDeadlineSettings(t *testing.T) {
	load := func(env map[string]string) (config.Config, error) {
		return config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	cfg, err := load(map[string]string{})
	if err != nil || cfg.Common.StoreTimeout != 30*time.Second || cfg.Trace.AgentTimeout != 10*time.Second {
		t.Fatalf("defaults: store %s, agent %s, %v", cfg.Common.StoreTimeout, cfg.Trace.AgentTimeout, err)
	}
	cfg, err = load(map[string]string{"FARM_STORE_TIMEOUT": "2s", "FARM_AGENT_TIMEOUT": "3s", "FARM_DEAD_LETTER_TOPIC": "farm-dead-letter"})
	if err != nil || cfg.Common.StoreTimeout != 2*time.Second || cfg.Trace.AgentTimeout != 3*time.Second || cfg.Common.DeadLetterTopic != "farm-dead-letter" {
		t.Fatalf("set: %+v, %v", cfg.Common, err)
	}
	for _, name := range []string{"FARM_STORE_TIMEOUT", "FARM_AGENT_TIMEOUT"} {
		if _, err := load(map[string]string{name: "0s"}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=0s: %v, want an error naming it", name, err)
		}
	}
}
