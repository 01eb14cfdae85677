"""The cache file format: a pickle cut into gzip members, an end member holding an index, an
optional HMAC signature and owner record. One module per job; dependencies point one way, each
module using only those listed before it:

    layout      the bytes: constants, member headers and subfields (the one header parser), the
                owner record, the end member and its index, the content fingerprint
    threads     thread counts (`CACHE_UTILS_THREADS`) and the worker pool (concurrent.futures)
    writer      `MemberWriter` (what `pickle.dump` writes into) and `data_fingerprint`
    reader      `MemberReader` (what `pickle.load` reads from), older single-member files, the
                member walk and the file's end
    signing     keys (rotation, environment), the file's and the owner's MACs, the signed-copy check
    opcodes     the walk of a pickle's opcodes that runs no code (housekeeping)
    serializer  `GzipPickleSerializer`, which puts them together

A format feature (a new subfield, say) starts in `layout`; `cache_utils.files` and
`cache_utils.loading` use `serializer` and nothing below it, but for key handling (`signing`), the
owner check before a write (`layout.owner_payload`) and `writer.data_fingerprint`.
"""
