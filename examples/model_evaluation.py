"""A mapped workload: train every model configuration on every dataset, then pick the best.

Seed snippet: the machine-learning evaluation example, with ``task_run_name`` templates and a
static (unmapped, because not iterable) ``dataset`` argument to ``map``.
"""

import random
from dataclasses import dataclass

from actorflow import RunRecorder, State, flow, task
from actorflow.futures import PrefectFuture, wait


@dataclass
class Dataset:
    name: str


@dataclass
class ModelConfig:
    name: str


@task(task_run_name="train on {dataset.name} with {model_config.name}")
def train_model(dataset: Dataset, model_config: ModelConfig) -> dict:
    return {
        "dataset": dataset.name,
        "model": model_config.name,
        "score": random.random(),
    }


@flow
def evaluate_models(datasets: list[Dataset], model_configs: list[ModelConfig]):
    all_futures: list[PrefectFuture[dict[str, object]]] = []
    for dataset in datasets:
        futures = train_model.map(
            dataset=dataset,
            model_config=model_configs,
        )
        all_futures.extend(futures)

    results = [future.result() for future in wait(all_futures).done]

    print(f"\nBest model: {max(results, key=lambda r: r['score'])}")


def main() -> dict[str, State]:
    """Run the flow; the final state of each training run, by run name."""
    with RunRecorder() as recorder:
        evaluate_models(
            datasets=[Dataset("customers"), Dataset("products"), Dataset("orders")],
            model_configs=[ModelConfig("random_forest"), ModelConfig("gradient_boosting")],
        )
    return {
        e.run_name: e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()
    }


if __name__ == "__main__":
    for name, state in main().items():
        print(f"{name}: {state}")
