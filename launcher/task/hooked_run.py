"""TensorFlow's session-hook protocol around plain `Session.run` calls, for the evaluator's hooks.

`MonitoredSession` runs hooks, but calls `begin()` each time it is made, and the evaluator builds its graph
once and finalizes it, then opens a fresh plain session per checkpoint (see `evaluation`): a hook's
`begin()` may add ops, which a finalized graph refuses. So `begin()` runs once, while the graph is built,
and each checkpoint's session gets `after_create_session`, `before_run`/`after_run` around every run
(the hooks' fetches, feeds and options merged into it, as `MonitoredSession` does), and `end`.
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

SessionRunHook = tf.compat.v1.train.SessionRunHook


class HookedRuns:
    def __init__(self, hooks: Sequence[SessionRunHook]):
        self._hooks = list(hooks)

    def begin(self) -> None:
        """While the graph is still open to new ops."""
        for hook in self._hooks:
            hook.begin()

    def session_created(self, session: tf.compat.v1.Session) -> tf.compat.v1.train.Coordinator:
        coord = tf.compat.v1.train.Coordinator()
        for hook in self._hooks:
            hook.after_create_session(session, coord)
        return coord

    def run(self, session: tf.compat.v1.Session, fetches: Any) -> tuple[Any, bool]:
        """`session.run(fetches)` with the hooks; also whether a hook asked to stop."""
        if not self._hooks:
            return session.run(fetches), False
        context = tf.compat.v1.train.SessionRunContext(tf.compat.v1.train.SessionRunArgs(fetches), session)
        wanted = [hook.before_run(context) for hook in self._hooks]
        all_fetches, feeds, options = {"_": fetches}, {}, tf.compat.v1.RunOptions()
        for i, args in enumerate(wanted):
            if args is None:
                continue
            if args.fetches is not None:
                all_fetches[i] = args.fetches
            feeds.update(args.feed_dict or {})
            if args.options is not None:
                options.MergeFrom(args.options)
        metadata = tf.compat.v1.RunMetadata()
        results = session.run(all_fetches, feed_dict=feeds or None, options=options, run_metadata=metadata)
        for i, hook in enumerate(self._hooks):
            hook.after_run(context, tf.compat.v1.train.SessionRunValues(results=results.get(i), options=options,
                                                                        run_metadata=metadata))
        return results["_"], context.stop_requested

    def end(self, session: tf.compat.v1.Session) -> None:
        for hook in self._hooks:
            hook.end(session)
