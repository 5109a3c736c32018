"""Guest sessions: sign in without credentials, become a real account later.

``anonymous(on_link=None, *, email_domain_name=None, generate_name=None,
generate_random_email=None, disable_delete_anonymous_user=False, allow_linking=True,
expires_in=None, rate_limit=None, max_age=None, should_delete=None, before_delete=None,
on_event=None, cleanup_interval=None)`` returns a native plugin object; arguments of the wrong
type raise ``TypeError`` right here.

``on_link(anonymous_user, new_user, ctx)`` (async or plain) runs when a guest signs up
or signs in to a real account. The two users are dicts shaped like the user JSON.
``ctx.request`` holds the method, path, headers and client IP; ``ctx.auth`` is the
handle ``init()`` returned; ``ctx.db`` runs SQL on the auth database inside the
conversion's own transaction (``await ctx.db.execute(sql, params)``,
``await ctx.db.fetch_all(sql, params)``, ``await ctx.db.fetch_one(sql, params)``), so
app tables in the same database move together with the conversion, or not at all.

Lifecycle options:

- ``allow_linking=False``: guests stay guests; ``/anonymous/upgrade``, ``/anonymous/link`` answer
  403 and signing in from a guest session neither calls ``on_link`` nor deletes the guest.
- ``expires_in``: seconds a guest session lives (default: ``session.expires_in``).
- ``rate_limit``: ``RateLimitRule(window, max)`` for ``/sign-in/anonymous`` per client IP
  (default 10 per 60 s), or ``False`` for none.
- ``max_age``: seconds of inactivity after which ``auth.api.cleanup_anonymous_users()`` and
  ``kernia cleanup-anonymous`` delete a guest; ``cleanup_interval`` runs that every so many
  seconds in-process. ``should_delete(user)`` may keep a guest; ``before_delete(user, ctx)`` runs
  in the deleting transaction with ``ctx.db``.
- ``on_event(event)``: a dict ``{"type", "user_id", "new_user_id", "time", "ip", "path"}`` for
  each guest ``created``, ``linked``, ``upgraded``, ``deleted``, ``cleaned_up`` and each
  ``rate_limited`` request; it runs on its own, and its failures are logged.
"""

from kernia._native import AnonymousPlugin, CallbackContext, ConversionDatabase, anonymous

__all__ = ["AnonymousPlugin", "CallbackContext", "ConversionDatabase", "anonymous"]
