package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/baton-run/baton/shared/inventory"
	"github.com/baton-run/baton/shared/store"
)

func groupItem(g inventory.Group) (item, error) {
	w := newWriter(key(pkGroups, g.Name))
	w.s(attrName, g.Name)
	w.s(attrDesc, g.Description)
	w.strs(attrNodes, g.Nodes)
	w.s(attrQuery, g.Query)
	w.time(attrCreated, g.CreatedAt)
	w.n(attrVersion, g.Version)
	if w.err != nil {
		return nil, w.err
	}
	if err := checkSize("group "+g.Name, w.it); err != nil {
		return nil, err
	}
	return w.it, nil
}

func decodeGroup(it item) (inventory.Group, error) {
	r := reader{it: it}
	g := inventory.Group{
		Name:        r.s(attrName),
		Description: r.s(attrDesc),
		Nodes:       r.strs(attrNodes),
		Query:       r.s(attrQuery),
		CreatedAt:   r.time(attrCreated),
		Version:     r.n(attrVersion),
	}
	if r.err != nil {
		return inventory.Group{}, fmt.Errorf("decode group %s: %w", str(it[SortKey]), r.err)
	}
	return g, nil
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error) {
	g.Version = 1
	if err := s.create(ctx, g.Name, func() (item, error) { return groupItem(g) }); err != nil {
		return inventory.Group{}, fmt.Errorf("create group %s: %w", g.Name, err)
	}
	return g, nil
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, name string) (inventory.Group, error) {
	it, err := s.getNamed(ctx, pkGroups, name, name)
	if err != nil {
		return inventory.Group{}, fmt.Errorf("get group %s: %w", name, err)
	}
	return decodeGroup(it)
}

// ListGroups implements store.Store: one query on the GROUPS partition, by name.
func (s *Store) ListGroups(ctx context.Context) ([]inventory.Group, error) {
	items, err := s.queryPartition(ctx, pkGroups)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var out []inventory.Group
	for _, it := range items {
		g, err := decodeGroup(it)
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		out = append(out, g)
	}
	return out, nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, g inventory.Group) (inventory.Group, error) {
	next := g
	next.Version++
	err := s.replace(ctx, key(pkGroups, g.Name), g.Version, func() (item, error) { return groupItem(next) })
	if err != nil {
		return inventory.Group{}, fmt.Errorf("update group %s at version %d: %w", g.Name, g.Version, err)
	}
	return next, nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	if err := s.deleteNamed(ctx, pkGroups, name); err != nil {
		return fmt.Errorf("delete group %s: %w", name, err)
	}
	return nil
}

// create writes the item build returns unless its key exists (store.ErrExists).
func (s *Store) create(ctx context.Context, name string, build func() (item, error)) error {
	if name == "" {
		return errEmptyName
	}
	it, err := build()
	if err != nil {
		return err
	}
	var e expr
	_, err = s.put(ctx, it, e.notExists(PartitionKey), &e)
	if _, ok := conditionFailed(err); ok {
		return store.ErrExists
	}
	return err
}

// replace writes the item build returns if the stored one is at version (else
// store.ErrConflict, or store.ErrNotFound when there is none).
func (s *Store) replace(ctx context.Context, k item, version int64, build func() (item, error)) error {
	if str(k[SortKey]) == "" {
		return store.ErrNotFound
	}
	it, err := build()
	if err != nil {
		return err
	}
	var e expr
	_, err = s.put(ctx, it, e.eq(attrVersion, avN(version)), &e)
	if ccf, ok := conditionFailed(err); ok {
		return s.versionMiss(ctx, k, ccf)
	}
	return err
}

// getNamed reads the item (pk, sk) of the record called name; store.ErrNotFound when there
// is none (or name is empty).
func (s *Store) getNamed(ctx context.Context, pk, sk, name string) (item, error) {
	if name == "" {
		return nil, store.ErrNotFound
	}
	it, err := s.get(ctx, key(pk, sk))
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, store.ErrNotFound
	}
	return it, nil
}

// deleteNamed deletes the item (pk, name); store.ErrNotFound when there is none.
func (s *Store) deleteNamed(ctx context.Context, pk, name string) error {
	if name == "" {
		return store.ErrNotFound
	}
	var e expr
	_, err := s.del(ctx, key(pk, name), e.exists(PartitionKey), &e)
	if _, ok := conditionFailed(err); ok {
		return store.ErrNotFound
	}
	return err
}

// queryPartition reads every item of partition pk, by sort key.
func (s *Store) queryPartition(ctx context.Context, pk string) ([]item, error) {
	var e expr
	return s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String(e.eq(PartitionKey, avS(pk))),
		ExpressionAttributeNames:  e.attrNames(),
		ExpressionAttributeValues: e.attrValues(),
	}, 0)
}
