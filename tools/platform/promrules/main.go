// Command promrules checks Prometheus rule files as Prometheus loads them (rulefmt: the YAML
// structure, the PromQL of every expression, label and annotation templates), like
// `promtool check rules` without promtool's service-discovery dependencies, and prints, as
// JSON, the metric names each rule's expression selects (so a test can check that the
// services export them).
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type matcher struct {
	Label string `json:"label"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

type selector struct {
	Metric   string    `json:"metric"`
	Matchers []matcher `json:"matchers"`
}

type rule struct {
	Name      string     `json:"name"`
	Metrics   []string   `json:"metrics"`
	Selectors []selector `json:"selectors"`
	// The labels of every "by (...)" aggregation, and whether any aggregation is "without".
	By      []string `json:"by"`
	Without bool     `json:"without"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promrules FILE...")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	failed := false
	found := []rule{}
	for _, path := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, p, logger)
		for _, err := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
		}
		if groups == nil {
			continue
		}
		for _, group := range groups.Groups {
			for _, r := range group.Rules {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s: %s: %v\n", path, r.Alert+r.Record, err)
					failed = true
					continue
				}
				names := map[string]bool{}
				selectors := []selector{}
				by := map[string]bool{}
				without := false
				parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
					switch n := node.(type) {
					case *parser.VectorSelector:
						if n.Name == "" {
							return nil
						}
						names[n.Name] = true
						matchers := []matcher{}
						for _, m := range n.LabelMatchers {
							if m.Name != model.MetricNameLabel {
								matchers = append(matchers, matcher{m.Name, m.Type.String(), m.Value})
							}
						}
						selectors = append(selectors, selector{Metric: n.Name, Matchers: matchers})
					case *parser.AggregateExpr:
						if n.Without {
							without = true
						} else {
							for _, label := range n.Grouping {
								by[label] = true
							}
						}
					}
					return nil
				})
				metrics := []string{}
				for name := range names {
					metrics = append(metrics, name)
				}
				sort.Strings(metrics)
				byLabels := []string{}
				for label := range by {
					byLabels = append(byLabels, label)
				}
				sort.Strings(byLabels)
				found = append(found, rule{
					Name: r.Alert + r.Record, Metrics: metrics, Selectors: selectors,
					By: byLabels, Without: without,
				})
			}
		}
	}
	if failed {
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string][]rule{"rules": found})
	fmt.Println(string(out))
}
