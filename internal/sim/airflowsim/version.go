package airflowsim

import (
	"fmt"
	"strconv"
	"strings"
)

// version is what the simulated server is: its REST API (v1 for Airflow 2, v2 for Airflow 3) and
// the Airflow release, which decides the features of v1 servers.
type version struct {
	api     string
	release [3]int
	str     string
}

func parseVersion(api, release string) (version, error) {
	switch api {
	case "", "v1":
		api = "v1"
		if release == "" {
			release = "2.10.5"
		}
	case "v2":
		if release == "" {
			release = "3.0.2"
		}
	default:
		return version{}, fmt.Errorf("airflowsim: API %q: want v1 (Airflow 2) or v2 (Airflow 3)", api)
	}
	v := version{api: api, str: release}
	parts := strings.SplitN(strings.SplitN(release, "+", 2)[0], ".", 3)
	if len(parts) != 3 {
		return version{}, fmt.Errorf("airflowsim: version %q is not major.minor.patch", release)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return version{}, fmt.Errorf("airflowsim: version %q is not major.minor.patch", release)
		}
		v.release[i] = n
	}
	if (api == "v1") != (v.release[0] == 2) {
		return version{}, fmt.Errorf("airflowsim: Airflow %s does not serve API %s", release, api)
	}
	return v, nil
}

func (v version) atLeast(major, minor, patch int) bool {
	have := v.release
	want := [3]int{major, minor, patch}
	for i := range have {
		if have[i] != want[i] {
			return have[i] > want[i]
		}
	}
	return true
}

// updatedAt: the updated_at_gte/lte filters exist from 2.6.
func (v version) updatedAt() bool { return v.api == "v2" || v.atLeast(2, 6, 0) }

// heartbeats: from Airflow 3.0 a running task instance's heartbeat is a column of its row
// (last_heartbeat_at), so its updated_at moves every few seconds; before, it was the job's row.
func (v version) heartbeats() bool { return v.api == "v2" }

// tries: the tries endpoints exist from 2.10.
func (v version) tries() bool { return v.api == "v2" || v.atLeast(2, 10, 0) }

// tiOrderBy: order_by on the v1 task-instance lists came in a 2.10 patch release (apache/airflow
// #41307); 2.10.0's spec does not have it, and strict validation refuses it.
func (v version) tiOrderBy() bool { return v.api == "v2" || v.atLeast(2, 10, 1) }

func (v version) prefix() string { return "/api/" + v.api }
