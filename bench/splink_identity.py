"""Splink 5 on DuckDB over the identity benchmark's records; runs in its own virtualenv (bench/identity.py
installs it), so it imports nothing from this project.

    python bench/splink_identity.py '{"input": "records.csv", "output": "clusters.csv", "threads": 2, "tmp": "dir"}'

The input has one row per record: unique_id, phone, email, x_handle, facebook_user_id, linkedin_member_urn,
customer_ref, name, link_key. Writes record_id,cluster_id as CSV and prints one JSON line last: records,
seconds per phase, versions and the thresholds used.
"""

from __future__ import annotations

import json
import logging
import sys
import time

IDENTIFIERS = ["phone", "email", "x_handle", "facebook_user_id", "linkedin_member_urn", "customer_ref", "link_key"]
# Chosen on the demo world (seed 7, 2,000 customers) for Splink's best result there: most true pairs share one
# identifier and nothing else, which the trained model scores between 0.2 and 0.5 (random sampling counts a
# person's own repeated phone among the non-matches); clustering at 0.5 found a quarter of the true pairs.
PREDICT_THRESHOLD = 0.1
CLUSTER_THRESHOLD = 0.2


def main(args: dict) -> dict:
    import duckdb
    import splink
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    t0 = time.perf_counter()
    con = duckdb.connect()
    for statement in (f"set threads = {int(args['threads'])}", f"set temp_directory = '{args['tmp']}'",
                      f"create table records as select * from read_csv('{args['input']}', header = true,"
                      " all_varchar = true)"):
        con.execute(statement).fetchall()  # DuckDB 2: a result left unread blocks the connection
    records = con.execute("select count(*) from records").fetchall()[0][0]
    db_api = DuckDBAPI(connection=con)
    df = db_api.register("records")
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[block_on(c) for c in IDENTIFIERS],
        comparisons=[
            cl.ExactMatch("phone"),
            cl.EmailComparison("email"),
            cl.ExactMatch("x_handle"),
            cl.ExactMatch("facebook_user_id"),
            cl.ExactMatch("linkedin_member_urn"),
            cl.ExactMatch("customer_ref"),
            cl.ExactMatch("link_key"),
            cl.NameComparison("name"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(df, settings, log_level=logging.WARNING)
    loaded = time.perf_counter()
    # the share of pairs that match, from pairs sharing a strong identifier (about nine in ten true pairs do)
    linker.training.estimate_probability_two_random_records_match([block_on(c) for c in IDENTIFIERS], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    # EM twice, each blocked on identifiers whose m it then does not estimate
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    trained = time.perf_counter()
    predict_threshold = float(args.get("predict_threshold", PREDICT_THRESHOLD))
    cluster_threshold = float(args.get("cluster_threshold", CLUSTER_THRESHOLD))
    pairs = linker.inference.predict(threshold_match_probability=predict_threshold)
    predicted = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pairs, threshold_match_probability=cluster_threshold)
    con.execute(f"copy (select unique_id as record_id, cluster_id from {clusters.physical_name})"
                f" to '{args['output']}' (header, delimiter ',')").fetchall()
    done = time.perf_counter()
    n_pairs = con.execute(f"select count(*) from {pairs.physical_name}").fetchall()[0][0]
    return {"records": records, "pairs_above_threshold": n_pairs, "seconds": done - t0,
            "load_seconds": loaded - t0, "train_seconds": trained - loaded, "predict_seconds": predicted - trained,
            "cluster_seconds": done - predicted, "splink": splink.__version__, "duckdb": duckdb.__version__,
            "predict_threshold": predict_threshold, "cluster_threshold": cluster_threshold}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
