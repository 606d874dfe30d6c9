package local

import (
	"log/slog"

	"github.com/baton-run/baton/shared/httpapi"
	"github.com/baton-run/baton/shared/orchestrator"
	"github.com/baton-run/baton/shared/puppetdb"
)

// puppetDB is the optional PuppetDB of Config.PuppetDB: when configured, scope queries go to
// it and the inventory shows its facts of nodes whose agent reported none.
type puppetDB struct{ client *puppetdb.Client }

func openPuppetDB(cfg puppetdb.Config, log *slog.Logger) (puppetDB, error) {
	if cfg.URL == "" {
		return puppetDB{}, nil
	}
	c, err := puppetdb.New(cfg)
	if err != nil {
		return puppetDB{}, err
	}
	log.Info("scope queries go to PuppetDB", "component", "local", "puppetdb", c.URL())
	return puppetDB{client: c}, nil
}

func (p puppetDB) orchestratorOption() orchestrator.Option {
	if p.client == nil {
		return func(*orchestrator.Service) {}
	}
	return orchestrator.WithQueryResolver(p.client)
}

func (p puppetDB) apiOption() httpapi.Option {
	if p.client == nil {
		return func(*httpapi.API) {}
	}
	return httpapi.WithFactSource(p.client)
}
