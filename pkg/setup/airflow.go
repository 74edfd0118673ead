package setup

import (
	"context"
	"errors"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/poll"
)

// AirflowEngine returns the poll engine of the configured Airflow or Cloud Composer
// (FARM_AIRFLOW_URL).
func (a *App) AirflowEngine(ctx context.Context) (*poll.Engine, error) {
	return lazy(ctx, a, "airflow engine", func(ctx context.Context) (*poll.Engine, error) {
		if a.Config.Airflow.URL == nil {
			return nil, errors.New("FARM_AIRFLOW_URL is not set: no Airflow to poll")
		}
		src, err := airflow.FromConfig(a.Config.Airflow, a.Config.Common, a.Clock, a.Log)
		if err != nil {
			return nil, err
		}
		return a.engine(ctx, src, event.SourceAirflow)
	})
}
