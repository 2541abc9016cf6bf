// The ingest ceiling of this machine: a bare fastify server (default JSON parser) answering 200
// to the same POSTs. Plain JavaScript, so it runs without a loader, as the built router does.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/', async (_req, reply) => reply.code(200).send());
const port = Number(process.argv[2]);
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
