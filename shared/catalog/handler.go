package catalog

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// FileHandler serves GET /files/{env}/{module}/{filename...}: task files behind URLs made by
// s.Sign. It answers 403 (kind puppetlabs.orchestrator/not-permitted) for a missing, forged or
// expired signature and 404 for files that are not part of a task of that module; the body
// comes with Content-Length, Content-Type application/octet-stream and X-Checksum-Sha256.
func FileHandler(c *Local, s *Signer, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "catalog-files")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/{env}/{module}/{filename...}", func(w http.ResponseWriter, r *http.Request) {
		env, module, filename := r.PathValue("env"), r.PathValue("module"), r.PathValue("filename")
		q := r.URL.Query()
		if err := s.Verify(env, module, filename, q.Get("expires"), q.Get("signature")); err != nil {
			msg := "File URL signature is invalid"
			if errors.Is(err, ErrURLExpired) {
				msg = "File URL has expired"
			}
			writeError(w, http.StatusForbidden, "puppetlabs.orchestrator/not-permitted", msg, nil)
			return
		}
		f, file, err := c.Open(r.Context(), env, module, filename)
		switch {
		case errors.Is(err, ErrUnknownEnvironment):
			writeError(w, http.StatusNotFound, "puppetlabs.orchestrator/unknown-environment",
				"Unknown environment "+env, map[string]any{"environment": env})
			return
		case errors.Is(err, ErrUnknownFile):
			writeError(w, http.StatusNotFound, "puppetlabs.orchestrator/unknown-file",
				"Unknown file "+module+"/"+filename, map[string]any{"environment": env, "module": module, "filename": filename})
			return
		case err != nil:
			logger.Error("open task file", "environment", env, "module", module, "filename", filename, "error", err)
			writeError(w, http.StatusInternalServerError, "puppetlabs.orchestrator/unknown-error", "Internal error", nil)
			return
		}
		defer f.Close()
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(file.SizeBytes, 10))
		h.Set("X-Checksum-Sha256", file.SHA256)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if _, err := io.Copy(w, io.NewSectionReader(f, 0, file.SizeBytes)); err != nil {
			logger.Warn("send task file", "environment", env, "module", module, "filename", filename, "error", err)
		}
	})
	return mux
}

type errorBody struct {
	Kind    string         `json:"kind"`
	Msg     string         `json:"msg"`
	Details map[string]any `json:"details"`
}

func writeError(w http.ResponseWriter, status int, kind, msg string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Kind: kind, Msg: msg, Details: details})
}
