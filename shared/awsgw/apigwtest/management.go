package apigwtest

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// manage serves the @connections API for one connection id:
//
//	POST   {base}/@connections/{id}  body → one text message to the client (200)
//	GET    {base}/@connections/{id}  → {connectedAt, identity{sourceIp, userAgent}, lastActiveAt}
//	DELETE {base}/@connections/{id}  → close (1000) and $disconnect (204)
//
// Errors have AWS's shape (x-amzn-ErrorType header plus a JSON body) so that the
// apigatewaymanagementapi client decodes them into its typed exceptions: unknown, pending or
// closed connection → 410 GoneException; POST body over 128 KB → 413 PayloadTooLargeException; no
// Authorization header → 403 (any SigV4 signature is otherwise accepted unverified).
func (a *WebSocketAPI) manage(w http.ResponseWriter, r *http.Request, id string) {
	if r.Header.Get("Authorization") == "" {
		writeJSON(w, http.StatusForbidden, "MissingAuthenticationTokenException", `{"message":"Missing Authentication Token"}`)
		return
	}
	a.m.update(func(s *Stats) { s.ManagementCalls[r.Method]++ })
	c := a.openConn(id)
	switch r.Method {
	case http.MethodPost:
		data, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageSize+1))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, "BadRequestException", `{"message":"Could not read the request body"}`)
			return
		}
		if len(data) > MaxMessageSize {
			writeJSON(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", `{"message":"Request Entity Too Large"}`)
			return
		}
		if c == nil {
			writeGone(w)
			return
		}
		if err := c.send(r.Context(), data); err != nil {
			a.log.Debug("post to connection failed", "connection_id", id, "err", err)
			writeGone(w)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		if c == nil {
			writeGone(w)
			return
		}
		body, err := json.Marshal(c.info())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, "InternalServerErrorException", `{"message":"Internal server error"}`)
			return
		}
		writeJSON(w, http.StatusOK, "", string(body))
	case http.MethodDelete:
		if c == nil {
			writeGone(w)
			return
		}
		c.shutdown(websocket.StatusNormalClosure, "")
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusForbidden, "MissingAuthenticationTokenException", `{"message":"Missing Authentication Token"}`)
	}
}

func writeGone(w http.ResponseWriter) {
	writeJSON(w, http.StatusGone, "GoneException", `{"message":null}`)
}
