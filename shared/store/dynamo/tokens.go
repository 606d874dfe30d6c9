package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/baton-run/baton/shared/store"
)

func tokenKey(hash string) item { return key(pkTokenPref+hash, skToken) }

func decodeToken(it item) (store.Token, error) {
	r := reader{it: it}
	t := store.Token{
		Hash:      r.s(attrHash),
		Login:     r.s(attrLogin),
		Label:     r.s(attrLabel),
		CreatedAt: r.time(attrCreated),
		ExpiresAt: r.timePtr(attrExpires),
		Revoked:   r.b(attrRevoked),
	}
	if r.err != nil {
		return store.Token{}, fmt.Errorf("decode token of %s: %w", str(it[attrLogin]), r.err)
	}
	return t, nil
}

// PutToken implements store.Store. A token that expires carries TTLAttribute, TokenRetention
// after its expiry, after which DynamoDB deletes it. The token is indexed for ListTokens
// under its login (GSI1) and among all tokens (GSI2), both sorted by "<created>#<hash>".
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if t.Hash == "" {
		return fmt.Errorf("put token for %s: %w", t.Login, errEmptyName)
	}
	w := newWriter(tokenKey(t.Hash))
	w.s(attrHash, t.Hash)
	w.s(attrLogin, t.Login)
	w.s(attrLabel, t.Label)
	w.time(attrCreated, t.CreatedAt)
	w.timePtr(attrExpires, t.ExpiresAt)
	w.b(attrRevoked, t.Revoked)
	if t.ExpiresAt != nil {
		w.n(TTLAttribute, t.ExpiresAt.Add(TokenRetention).Unix())
	}
	if w.err != nil {
		return fmt.Errorf("put token for %s: %w", t.Login, w.err)
	}
	order := str(w.it[attrCreated]) + "#" + t.Hash
	w.s(GSI1PK, gsiLoginToken+t.Login)
	w.s(GSI1SK, order)
	w.s(GSI2PK, gsiTokens)
	w.s(GSI2SK, order)
	var e expr
	_, err := s.put(ctx, w.it, e.notExists(PartitionKey), &e)
	if _, ok := conditionFailed(err); ok {
		return fmt.Errorf("put token for %s: %w", t.Login, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put token for %s: %w", t.Login, err)
	}
	return nil
}

// GetToken implements store.Store.
func (s *Store) GetToken(ctx context.Context, hash string) (store.Token, error) {
	if hash == "" {
		return store.Token{}, fmt.Errorf("get token: %w", store.ErrNotFound)
	}
	it, err := s.get(ctx, tokenKey(hash))
	if err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	if it == nil {
		return store.Token{}, fmt.Errorf("get token: %w", store.ErrNotFound)
	}
	t, err := decodeToken(it)
	if err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Store: a query, newest first, of the TOKENS#<login> partition
// of GSI1 (or, for every login, the TOKENS partition of GSI2), both keys only, then a
// consistent BatchGetItem of the tokens it names. Equal creation times come by hash,
// descending. A token the index names but the table no longer holds (deleted by TTL) is
// left out, and so is one written by a build older than ListTokens, which carries no index
// keys.
func (s *Store) ListTokens(ctx context.Context, login string) ([]store.Token, error) {
	index, pk, sk, partition := GSI2, GSI2PK, GSI2SK, gsiTokens
	if login != "" {
		index, pk, sk, partition = GSI1, GSI1PK, GSI1SK, gsiLoginToken+login
	}
	var e expr
	refs, err := s.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String(e.eq(pk, avS(partition))),
		ProjectionExpression:      aws.String(e.projection(PartitionKey, SortKey, pk, sk)),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
		ScanIndexForward:          aws.Bool(false),
	}, 0)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", login, err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	keys := make([]item, len(refs))
	for i, ref := range refs {
		keys[i] = key(str(ref[PartitionKey]), str(ref[SortKey]))
	}
	found, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", login, err)
	}
	out := make([]store.Token, 0, len(keys))
	for _, k := range keys {
		it, ok := found[keyString(k)]
		if !ok {
			continue
		}
		t, err := decodeToken(it)
		if err != nil {
			return nil, fmt.Errorf("list tokens of %q: %w", login, err)
		}
		if login != "" && t.Login != login {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// RevokeToken implements store.Store: an UpdateItem that the token must exist.
func (s *Store) RevokeToken(ctx context.Context, hash string) error {
	if hash == "" {
		return fmt.Errorf("revoke token: %w", store.ErrNotFound)
	}
	var e expr
	upd := "SET " + e.name(attrRevoked) + " = " + e.value(avBool(true))
	_, err := s.update(ctx, tokenKey(hash), upd, e.exists(PartitionKey), &e, types.ReturnValueAllNew, nil)
	if _, ok := conditionFailed(err); ok {
		return fmt.Errorf("revoke token: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}
