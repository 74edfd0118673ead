package argosim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// gRPC status codes the Argo Server answers with, through grpc-gateway v1.
const (
	codeInvalidArgument   = 3
	codeDeadlineExceeded  = 4
	codeNotFound          = 5
	codePermissionDenied  = 7
	codeResourceExhausted = 8
	codeInternal          = 13
	codeUnavailable       = 14
	codeUnauthenticated   = 16
)

// apiError is a gRPC status as grpc-gateway writes it: {"code":3,"message":"..."}, with the HTTP
// status that grpc-gateway maps the code to.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return fmt.Sprintf("code %d: %s", e.Code, e.Message) }

func errorf(code int, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *apiError) httpStatus() int {
	switch e.Code {
	case codeInvalidArgument:
		return http.StatusBadRequest
	case codeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case codeNotFound:
		return http.StatusNotFound
	case codePermissionDenied:
		return http.StatusForbidden
	case codeResourceExhausted:
		return http.StatusTooManyRequests
	case codeUnavailable:
		return http.StatusServiceUnavailable
	case codeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// listOptions is what the Argo Server builds from a list request (server/utils/list_options.go).
type listOptions struct {
	namespace      string
	name           string
	nameFilter     string // live rows only: Exact (default), Contains, Prefix
	namePrefix     string // archived-workflows list only
	minStartedAt   time.Time
	maxStartedAt   time.Time
	createdAfter   time.Time
	finishedBefore time.Time
	labels         selector
	limit, offset  int
	showRemaining  bool
}

// parseListOptions reads the listOptions.* query parameters the way the Argo Server does,
// including its error codes: InvalidArgument for a bad continue, field or label selector, but
// Internal (HTTP 500) for an unparseable time in a field selector, createdAfter or finishedBefore.
// namePrefix and nameFilter are the request's own fields (archived list and workflow list).
func parseListOptions(q url.Values, namespace, namePrefix, nameFilter string) (listOptions, error) {
	o := listOptions{namespace: namespace, nameFilter: nameFilter, namePrefix: namePrefix}
	if v := q.Get("listOptions.limit"); v != "" {
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			return o, errorf(codeInvalidArgument, "%v", err)
		}
		o.limit = max(int(n), 0)
	}
	cont := q.Get("listOptions.continue")
	if cont == "" {
		cont = "0"
	}
	off, err := strconv.Atoi(cont)
	if err != nil {
		return o, errorf(codeInvalidArgument, "listOptions.continue must be int")
	}
	if off < 0 {
		return o, errorf(codeInvalidArgument, "listOptions.continue must >= 0")
	}
	o.offset = off
	if o.createdAfter, err = parseOptionalTime(q.Get("createdAfter")); err != nil {
		return o, errorf(codeInternal, "%v", err)
	}
	if o.finishedBefore, err = parseOptionalTime(q.Get("finishedBefore")); err != nil {
		return o, errorf(codeInternal, "%v", err)
	}
	if err := o.applyFieldSelector(q.Get("listOptions.fieldSelector")); err != nil {
		return o, err
	}
	if o.labels, err = parseSelector(q.Get("listOptions.labelSelector")); err != nil {
		return o, errorf(codeInvalidArgument, "%v", err)
	}
	return o, nil
}

func parseOptionalTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// applyFieldSelector accepts only the selectors upstream accepts; anything else is
// InvalidArgument "unsupported requirement …".
func (o *listOptions) applyFieldSelector(fs string) error {
	for _, sel := range strings.Split(fs, ",") {
		var err error
		switch {
		case sel == "":
		case strings.HasPrefix(sel, "metadata.namespace="):
			ns := strings.TrimPrefix(sel, "metadata.namespace=")
			switch o.namespace {
			case "":
				o.namespace = ns
			case ns:
			default:
				return errorf(codeInvalidArgument, "'namespace' query param (%q) and fieldselector 'metadata.namespace' (%q) are both specified and contradict each other", o.namespace, ns)
			}
		case strings.HasPrefix(sel, "metadata.name="):
			o.name = strings.TrimPrefix(sel, "metadata.name=")
		case strings.HasPrefix(sel, "spec.startedAt>"):
			o.minStartedAt, err = time.Parse(time.RFC3339, strings.TrimPrefix(sel, "spec.startedAt>"))
		case strings.HasPrefix(sel, "spec.startedAt<"):
			o.maxStartedAt, err = time.Parse(time.RFC3339, strings.TrimPrefix(sel, "spec.startedAt<"))
		case strings.HasPrefix(sel, "ext.showRemainingItemCount"):
			o.showRemaining, err = strconv.ParseBool(strings.TrimPrefix(sel, "ext.showRemainingItemCount="))
		default:
			return errorf(codeInvalidArgument, "unsupported requirement %s", sel)
		}
		if err != nil {
			return errorf(codeInternal, "%v", err)
		}
	}
	return nil
}

// filterKey identifies the rows o selects, whatever the page.
func (o *listOptions) filterKey() string {
	return fmt.Sprintf("%q|%q|%q|%q|%v|%v|%v|%v|%v", o.namespace, o.name, o.nameFilter, o.namePrefix,
		o.minStartedAt, o.maxStartedAt, o.createdAfter, o.finishedBefore, o.labels)
}

// matchesCommon applies the filters that live and archived rows share. Bounds are inclusive
// (upstream SQL uses >= and <=), and a running workflow's zero finishedAt is "before" any time.
func (o *listOptions) matchesCommon(ns string, created, started, finished time.Time) bool {
	switch {
	case o.namespace != "" && ns != o.namespace,
		!o.createdAfter.IsZero() && created.Before(o.createdAfter),
		!o.finishedBefore.IsZero() && finished.After(o.finishedBefore),
		!o.minStartedAt.IsZero() && started.Before(o.minStartedAt),
		!o.maxStartedAt.IsZero() && started.After(o.maxStartedAt):
		return false
	}
	return true
}

// matchesLive applies the filters of the live-workflow store; metadata.name honours nameFilter.
func (o *listOptions) matchesLive(w *Workflow) bool {
	m := &w.Metadata
	if !o.matchesCommon(m.Namespace, m.CreationTimestamp.Time, w.Status.StartedAt.Time, w.Status.FinishedAt.Time) {
		return false
	}
	if o.name != "" {
		switch o.nameFilter {
		case "", "Exact":
			if m.Name != o.name {
				return false
			}
		case "Contains":
			if !strings.Contains(m.Name, o.name) {
				return false
			}
		case "Prefix":
			if !strings.HasPrefix(m.Name, o.name) {
				return false
			}
		}
	}
	return o.labels.matches(m.Labels)
}

// matchesArchived applies the archive's filters: exact name, optional name prefix.
func (o *listOptions) matchesArchived(w *Workflow) bool {
	m := &w.Metadata
	switch {
	case !o.matchesCommon(m.Namespace, m.CreationTimestamp.Time, w.Status.StartedAt.Time, w.Status.FinishedAt.Time),
		o.name != "" && m.Name != o.name,
		o.namePrefix != "" && !strings.HasPrefix(m.Name, o.namePrefix):
		return false
	}
	return o.labels.matches(m.Labels)
}
