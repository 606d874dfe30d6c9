package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
)

// PCP v2 message types (reference §3.5).
const (
	TypeAssociateRequest  = "http://puppetlabs.com/associate_request"
	TypeAssociateResponse = "http://puppetlabs.com/associate_response"
	TypeErrorMessage      = "http://puppetlabs.com/error_message"
)

// PXP v1 message types (reference §4.1).
const (
	TypeBlockingRequest     = "http://puppetlabs.com/rpc_blocking_request"
	TypeBlockingResponse    = "http://puppetlabs.com/rpc_blocking_response"
	TypeNonBlockingRequest  = "http://puppetlabs.com/rpc_non_blocking_request"
	TypeProvisionalResponse = "http://puppetlabs.com/rpc_provisional_response"
	TypeNonBlockingResponse = "http://puppetlabs.com/rpc_non_blocking_response"
	TypeRPCError            = "http://puppetlabs.com/rpc_error_message"
)

// Baton extensions beyond PXP v1. Each has its own message type so that a plain PXP peer
// ignores or rejects it cleanly.
const (
	// TypeResultAck is sent by the server once it has durably recorded the outcome of a
	// transaction (a non_blocking_response or rpc_error_message). Until then the agent keeps the
	// result in its spool and sends it again after every reconnect. Data: ResultAck.
	TypeResultAck = "https://baton.run/pxp/result_ack"
	// TypeFacts is sent by an agent after it connects (and whenever its facts change). Data: Facts.
	TypeFacts = "https://baton.run/pxp/facts"
	// TypeCancel asks the agent to kill the process group of a running transaction. Data: Cancel.
	TypeCancel = "https://baton.run/pxp/cancel"
	// TypeKeepalive is sent by an agent now and then with no data: API Gateway closes a
	// WebSocket after 10 minutes without a data message (pings do not count).
	TypeKeepalive = "https://baton.run/pxp/keepalive"
	// TypeOutput carries a running task's live output, agent to server (see Output). Data: Output.
	TypeOutput = "https://baton.run/pxp/output"
)

// Module and action names used in PXP requests.
const (
	ModuleTask   = "task"
	ModulePuppet = "pxp-module-puppet"
	ModuleStatus = "status"
	ActionRun    = "run"
	ActionQuery  = "query"
)

// ServerURI is the PCP URI of the control plane.
const ServerURI = "pcp:///server"

// AgentURI returns the PCP URI of the agent on node name.
func AgentURI(name string) string { return "pcp://" + name + "/agent" }

// NodeFromURI returns the node name of a pcp://<name>/<type> URI.
func NodeFromURI(uri string) (string, error) {
	rest, ok := strings.CutPrefix(uri, "pcp://")
	if !ok {
		return "", fmt.Errorf("%w: %q is not a pcp:// URI", ErrInvalid, uri)
	}
	name, clientType, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return "", fmt.Errorf("%w: %q has no node name", ErrInvalid, uri)
	}
	if clientType == "" || strings.Contains(clientType, "/") {
		return "", fmt.Errorf("%w: %q is not of the form pcp://<name>/<type>", ErrInvalid, uri)
	}
	return name, nil
}

// ErrInvalid is wrapped by every decoding and validation error of this package.
var ErrInvalid = errors.New("invalid message")

// Envelope is the PCP v2 message (reference §3.3). Data is kept raw and decoded by type.
type Envelope struct {
	ID          string          `json:"id"`
	MessageType string          `json:"message_type"`
	Target      string          `json:"target,omitempty"`
	Sender      string          `json:"sender,omitempty"`
	InReplyTo   string          `json:"in_reply_to,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
}

// validMessageType reports whether t is made of the characters message types use: [\w\-.:/]+.
func validMessageType(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !alnum(c) && c != '_' && c != '-' && c != '.' && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

var knownTypes = map[string]bool{
	TypeAssociateRequest: true, TypeAssociateResponse: true, TypeErrorMessage: true,
	TypeBlockingRequest: true, TypeBlockingResponse: true, TypeNonBlockingRequest: true,
	TypeProvisionalResponse: true, TypeNonBlockingResponse: true, TypeRPCError: true,
	TypeResultAck: true, TypeFacts: true, TypeCancel: true, TypeKeepalive: true, TypeOutput: true,
}

// KnownType reports whether t is a message type this package defines.
func KnownType(t string) bool { return knownTypes[t] }

// Decode parses one frame. Unknown envelope fields (object keys are matched exactly, not
// case-insensitively), a missing id or message_type, an unknown message type, and trailing data
// are errors wrapping ErrInvalid. The returned envelope's ID is set whenever it could be read, so
// that an error reply can name it in in_reply_to.
func Decode(b []byte) (Envelope, error) {
	e, ok := decodePlain(b)
	if !ok {
		var err error
		if e, err = decodeAny(b); err != nil {
			return e, err
		}
	}
	if e.ID == "" {
		return e, fmt.Errorf("%w: missing id", ErrInvalid)
	}
	if e.MessageType == "" {
		return e, fmt.Errorf("%w: missing message_type", ErrInvalid)
	}
	if !validMessageType(e.MessageType) || !KnownType(e.MessageType) {
		return e, fmt.Errorf("%w: unknown message_type %q", ErrInvalid, e.MessageType)
	}
	return e, nil
}

// decodeAny decodes any frame through encoding/json, then checks its keys.
func decodeAny(b []byte) (Envelope, error) {
	var e Envelope
	if end, err := unmarshal(b, &e); err != nil {
		if end >= 0 {
			return Envelope{ID: readableID(b[:end])}, fmt.Errorf("%w: trailing data after message", ErrInvalid)
		}
		return Envelope{ID: readableID(b)}, fmt.Errorf("%w: could not decode message: %v", ErrInvalid, err)
	}
	if err := checkKeys(b, envelopeType); err != nil {
		return Envelope{ID: readableID(b)}, fmt.Errorf("%w: could not decode message: %v", ErrInvalid, err)
	}
	return e, nil
}

// decodePlain decodes the frames peers send, in one check of the JSON and one pass over it,
// without reflection: an object whose keys are distinct envelope field names and whose values
// other than data are strings of printable ASCII without escapes. Anything else — escapes,
// other bytes, a repeated or unknown key, a non-string value, a null data, trailing data,
// invalid JSON — is not decoded here (ok false), for decodeAny to decode or refuse.
// FuzzDecodePlain checks that it decodes what decodeAny would, wherever ok.
func decodePlain(b []byte) (e Envelope, ok bool) {
	if !json.Valid(b) {
		return Envelope{}, false
	}
	s := keyScanner{b: b}
	s.space()
	if s.i >= len(b) || b[s.i] != '{' {
		return Envelope{}, false
	}
	s.i++
	s.space()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return e, s.atEnd()
	}
	var seen [6]bool
	for {
		s.space()
		key, ok := s.plainStr()
		if !ok {
			return Envelope{}, false
		}
		field := envelopeField(key)
		if field < 0 || seen[field] {
			return Envelope{}, false
		}
		seen[field] = true
		s.space()
		s.i++ // ':' (the JSON is valid)
		s.space()
		if field == fieldData {
			start := s.i
			if s.skip() != nil {
				return Envelope{}, false
			}
			raw := b[start:s.i]
			if string(raw) == "null" {
				return Envelope{}, false
			}
			e.Data = append(json.RawMessage(nil), raw...)
		} else {
			v, ok := s.plainStr()
			if !ok {
				return Envelope{}, false
			}
			switch field {
			case fieldID:
				e.ID = v
			case fieldMessageType:
				e.MessageType = v
			case fieldTarget:
				e.Target = v
			case fieldSender:
				e.Sender = v
			case fieldInReplyTo:
				e.InReplyTo = v
			}
		}
		s.space()
		if s.i >= len(b) {
			return Envelope{}, false
		}
		if b[s.i] == '}' {
			s.i++
			return e, s.atEnd()
		}
		s.i++ // ','
	}
}

// The envelope's fields, as decodePlain numbers them.
const (
	fieldID = iota
	fieldMessageType
	fieldTarget
	fieldSender
	fieldInReplyTo
	fieldData
)

// envelopeField returns the number of the Envelope field whose JSON name is key, or -1.
func envelopeField(key string) int {
	switch key {
	case "id":
		return fieldID
	case "message_type":
		return fieldMessageType
	case "target":
		return fieldTarget
	case "sender":
		return fieldSender
	case "in_reply_to":
		return fieldInReplyTo
	case "data":
		return fieldData
	}
	return -1
}

// plainStr reads a string at the current position whose bytes are printable ASCII other than
// the backslash (its value is its bytes); ok is false for anything else.
func (s *keyScanner) plainStr() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i + 1
	for s.i = start; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return string(s.b[start : s.i-1]), true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", false
		}
	}
	return "", false
}

// atEnd reports whether only JSON whitespace follows the current position.
func (s *keyScanner) atEnd() bool {
	s.space()
	return s.i == len(s.b)
}

var envelopeType = reflect.TypeFor[Envelope]()

// readableID returns the string value of the "id" key of the JSON object b, or "" when b is not
// an object or has no string id.
func readableID(b []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(m["id"], &id) != nil {
		return ""
	}
	return id
}

// unmarshal decodes the one JSON value b into v. When b holds more after that value, end is
// where the value ends; otherwise end is -1. Unknown keys are not refused here: checkKeys
// does that, exactly (encoding/json matches keys case-insensitively). json.Unmarshal, not a
// json.Decoder: a Decoder copies the message into buffers of its own, for every message.
func unmarshal(b []byte, v any) (end int, err error) {
	err = json.Unmarshal(b, v)
	var se *json.SyntaxError
	if errors.As(err, &se) && strings.HasSuffix(se.Error(), "after top-level value") {
		// Offset counts the offending character: the value ended before it, and before the
		// whitespace after it.
		end = int(se.Offset) - 1
		for end > 0 && strings.ContainsRune(" \t\r\n", rune(b[end-1])) {
			end--
		}
		return end, err
	}
	return -1, err
}

// trailing reports whether rest holds anything but JSON whitespace. (json.Decoder.More is not
// enough: it reports false before a stray ']' or '}'.)
func trailing(rest []byte) bool { return len(bytes.TrimLeft(rest, " \t\r\n")) > 0 }

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// checkKeys walks the JSON value b (already decoded successfully into a value of type t) and
// rejects any object key that is not exactly the JSON name of a field of the struct type it
// decodes into: encoding/json matches keys case-insensitively, the wire schemas do not. It
// reads b once, without decoding values (see keyScanner).
func checkKeys(b []byte, t reflect.Type) error {
	s := keyScanner{b: b}
	s.space()
	return s.value(t)
}

// keyScanner reads a JSON text that encoding/json has already accepted, checking object keys
// against the Go types the values decode into and skipping everything else.
type keyScanner struct {
	b []byte
	i int
}

func (s *keyScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value checks the value at the current position, of Go type t.
func (s *keyScanner) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s.i >= len(s.b) {
		return errors.New("json: unexpected end of input")
	}
	if t == nil || t == rawMessageType {
		return s.skip()
	}
	switch c := s.b[s.i]; {
	case c == '{' && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map):
		var fields map[string]reflect.Type
		if t.Kind() == reflect.Struct {
			fields = cachedFields(t)
		}
		s.i++
		s.space()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return nil
		}
		for {
			s.space()
			key, err := s.str()
			if err != nil {
				return err
			}
			vt := t.Elem
			var ft reflect.Type
			if fields != nil {
				var ok bool
				if ft, ok = fields[key]; !ok {
					return fmt.Errorf("json: unknown field %q", key)
				}
			} else {
				ft = vt()
			}
			s.space()
			s.i++ // ':'
			s.space()
			if err := s.value(ft); err != nil {
				return err
			}
			s.space()
			if s.i >= len(s.b) {
				return errors.New("json: unexpected end of input")
			}
			if s.b[s.i] == '}' {
				s.i++
				return nil
			}
			s.i++ // ','
		}
	case c == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8):
		s.i++
		s.space()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		for {
			s.space()
			if err := s.value(t.Elem()); err != nil {
				return err
			}
			s.space()
			if s.i >= len(s.b) {
				return errors.New("json: unexpected end of input")
			}
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			s.i++ // ','
		}
	}
	return s.skip()
}

// str reads a string and returns its value.
func (s *keyScanner) str() (string, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", errors.New("json: object key is not a string")
	}
	start := s.i
	escaped := false
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i++
		case '"':
			s.i++
			raw := s.b[start:s.i]
			if !escaped {
				return string(raw[1 : len(raw)-1]), nil
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return "", err
			}
			return v, nil
		}
	}
	return "", errors.New("json: unexpected end of input")
}

// skipStr steps over the string at the current position without decoding it (encoding/json
// has checked it already).
func (s *keyScanner) skipStr() error {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return errors.New("json: expected a string")
	}
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return nil
		}
	}
	return errors.New("json: unexpected end of input")
}

// skip steps over one value of any kind.
func (s *keyScanner) skip() error {
	if s.i >= len(s.b) {
		return errors.New("json: unexpected end of input")
	}
	switch s.b[s.i] {
	case '"':
		return s.skipStr()
	case '{', '[':
		depth := 0
		for ; s.i < len(s.b); s.i++ {
			switch s.b[s.i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			case '"':
				if err := s.skipStr(); err != nil {
					return err
				}
				s.i-- // the loop steps past the closing quote
			}
		}
		return errors.New("json: unexpected end of input")
	}
	for s.i < len(s.b) { // a number, true, false or null
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		s.i++
	}
	return nil
}

// fieldCache holds jsonFields of the struct types seen.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

func cachedFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	f := jsonFields(t)
	fieldCache.Store(t, f)
	return f
}

// jsonFields maps the JSON names of the fields of struct type t to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					fields[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// Encode renders an envelope as one frame.
func Encode(e Envelope) ([]byte, error) {
	if e.ID == "" || e.MessageType == "" {
		return nil, fmt.Errorf("%w: id and message_type are required", ErrInvalid)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.MessageType, err)
	}
	return b, nil
}

// New builds an envelope with a fresh id and data marshalled from v (nil for no data).
func New(messageType, target string, v any) (Envelope, error) {
	e := Envelope{ID: NewID(), MessageType: messageType, Target: target}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return Envelope{}, fmt.Errorf("encode %s data: %w", messageType, err)
		}
		e.Data = b
	}
	return e, nil
}

// NewID returns a random RFC 4122 version 4 UUID string.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never returns an error (it aborts the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// DecodeData strictly decodes e.Data into v: unknown fields (matched exactly, at any depth) are
// rejected, and so are missing data and trailing data. If v has a Validate() error method, it
// must pass.
func DecodeData(e Envelope, v any) error {
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return fmt.Errorf("%w: %s has no data", ErrInvalid, e.MessageType)
	}
	if end, err := unmarshal(e.Data, v); err != nil {
		if end >= 0 {
			return fmt.Errorf("%w: %s data: trailing data", ErrInvalid, e.MessageType)
		}
		return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.MessageType, err)
	}
	if err := checkKeys(e.Data, reflect.TypeOf(v)); err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.MessageType, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.MessageType, err)
		}
	}
	return nil
}

// NewErrorMessage builds a PCP v2 error_message: data is the description string and
// in_reply_to names the offending message (empty when it could not be read).
func NewErrorMessage(inReplyTo, description string) Envelope {
	b, _ := json.Marshal(description)
	return Envelope{ID: NewID(), MessageType: TypeErrorMessage, InReplyTo: inReplyTo, Data: b}
}

// NewRetryableError builds an error_message in Baton's extended form (ErrorData) saying that
// the message inReplyTo was refused for now and should be sent again, not before after (0:
// after a backoff of the sender's choosing). Durations are rounded up to whole milliseconds.
func NewRetryableError(inReplyTo, description string, after time.Duration) Envelope {
	d := ErrorData{ID: inReplyTo, Description: description, Retry: true}
	if after > 0 {
		d.RetryAfterMS = int64((after + time.Millisecond - 1) / time.Millisecond)
	}
	b, _ := json.Marshal(d)
	return Envelope{ID: NewID(), MessageType: TypeErrorMessage, InReplyTo: inReplyTo, Data: b}
}

// DecodeErrorMessage reads an error_message's data in either form: PCP v2's description string
// or Baton's ErrorData object (strictly, like DecodeData). The result's ID is the envelope's
// in_reply_to when the data does not name the refused message itself.
func DecodeErrorMessage(e Envelope) (ErrorData, error) {
	if e.MessageType != TypeErrorMessage {
		return ErrorData{}, fmt.Errorf("%w: %s is not an error_message", ErrInvalid, e.MessageType)
	}
	var d ErrorData
	data := bytes.TrimLeft(e.Data, " \t\r\n")
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &d.Description); err != nil {
			return ErrorData{}, fmt.Errorf("%w: %s data: %v", ErrInvalid, e.MessageType, err)
		}
	} else if err := DecodeData(e, &d); err != nil {
		return ErrorData{}, err
	}
	if d.ID == "" {
		d.ID = e.InReplyTo
	}
	return d, nil
}

// MessageID returns the "id" of the message frame b without decoding the rest, or "" when it
// has none that can be read: what an error_message about a frame refused unread (say, by a
// rate limit) puts in in_reply_to.
func MessageID(b []byte) string { return readableID(b) }
