"""Guest sessions: sign in without credentials, convert to a real account later.

``anonymous(on_link=None, *, email_domain_name=None, generate_name=None,
generate_random_email=None, disable_delete_anonymous_user=False)`` returns a native
plugin object; arguments of the wrong type raise ``TypeError`` right here.

``on_link(anonymous_user, new_user, ctx)`` (async or plain) runs when a guest signs up
or signs in to a real account. The two users are dicts shaped like the user JSON.
``ctx.request`` holds the method, path, headers and client IP; ``ctx.auth`` is the
handle ``init()`` returned; ``ctx.db`` runs SQL on the auth database inside the
conversion's own transaction (``await ctx.db.execute(sql, params)``,
``await ctx.db.fetch_all(sql, params)``, ``await ctx.db.fetch_one(sql, params)``), so
app tables in the same database move together with the conversion, or not at all.
"""

from kernia._native import AnonymousPlugin, CallbackContext, ConversionDatabase, anonymous

__all__ = ["AnonymousPlugin", "CallbackContext", "ConversionDatabase", "anonymous"]
