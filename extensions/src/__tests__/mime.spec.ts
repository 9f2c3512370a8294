import { RenderedAttestation, notebookRendererFactory, rendererFactory } from '../mime';
import { ATTESTATION_MIME } from '../protocol';
import { server, simulatedVerdict } from './fixtures';

const REPORT = {
  token: 'header.payload.signature',
  tee_pubkey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' },
  evidence: 'ZXZpZGVuY2U=',
  nonce: 'bm9uY2U=',
  transport_key: 'ab'.repeat(32)
};

function model(): any {
  return { data: { [ATTESTATION_MIME]: REPORT }, metadata: {}, trusted: true };
}

const OPTIONS: any = { mimeType: ATTESTATION_MIME };

describe('the evidence card', () => {
  it('names the notebook kernel so the server can check the transport key', async () => {
    const { settings, calls } = server(200, simulatedVerdict());
    const bodies = () => calls.map(c => JSON.parse(c.body));
    const card = new RenderedAttestation(OPTIONS, settings, () => 'kernel-1');
    await card.renderModel(model());
    expect(bodies()).toHaveLength(1);
    expect(bodies()[0].kernel_id).toBe('kernel-1');
    expect(bodies()[0].transport_key).toBe(REPORT.transport_key);
    expect(card.node.textContent).toContain('Simulated');
  });

  it('names no kernel when it has none to name', async () => {
    const { settings, calls } = server(200, simulatedVerdict());
    const bodies = () => calls.map(c => JSON.parse(c.body));
    await new RenderedAttestation(OPTIONS, settings, () => null).renderModel(model());
    await new RenderedAttestation(OPTIONS, settings).renderModel(model());
    expect(bodies().map(b => 'kernel_id' in b)).toEqual([false, false]);
  });

  it('the notebook factory keeps the mime type and rank of the default one', () => {
    const factory = notebookRendererFactory(() => 'kernel-2');
    expect(factory.mimeTypes).toEqual(rendererFactory.mimeTypes);
    expect(factory.defaultRank).toBe(rendererFactory.defaultRank);
    expect(factory.createRenderer(OPTIONS)).toBeInstanceOf(RenderedAttestation);
  });
});
