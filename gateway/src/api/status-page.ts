// The status page: one self-contained HTML document (no external assets: the
// gateway may have no internet) that polls /api/v1/status.

import { UNITS } from '../core/units.ts'

const SYMBOLS = JSON.stringify(Object.fromEntries(Object.entries(UNITS).map(([id, u]) => [id, u.symbol])))

export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Fieldproof gateway</title>
<style>
 body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
 header{background:#12343b;color:#fff;padding:14px 20px}
 header h1{margin:0;font-size:19px} header small{opacity:.8}
 main{padding:16px 20px;display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(280px,1fr))}
 section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0001}
 h2{font-size:14px;text-transform:uppercase;letter-spacing:.04em;color:#56606b;margin:0 0 8px}
 dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;margin:0} dt{color:#56606b} dd{margin:0;word-break:break-all}
 .ok{color:#17803d}.warn{color:#b45309}.bad{color:#b91c1c} code{font-size:13px}
 table{border-collapse:collapse;width:100%;font-size:13px} td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee}
</style></head><body>
<header><h1>Fieldproof gateway <small id="name"></small></h1><small id="addr"></small></header>
<main>
 <section><h2>Gateway</h2><dl id="gw"></dl></section>
 <section><h2>Readings &amp; batches</h2><dl id="counts"></dl></section>
 <section><h2>Storage</h2><dl id="store"></dl></section>
 <section><h2>Upstream sinks</h2><table id="sinks"></table></section>
 <section id="fb" hidden style="grid-column:1/-1"><h2>First boot</h2><div id="fbbody"><p>This gateway was set up from <code>fieldproof.toml</code>. Its report (address, URLs, generated passwords) is shown once: enter the API token (<code>sudo cat /var/lib/fieldproof/api-token</code>, also in <code>/home/admin/firstboot-report.txt</code>) to see it.</p><form id="fbform"><input id="fbtoken" type="password" autocomplete="off" placeholder="API token" size="48"> <button>Show the report</button></form><p id="fberr" class="bad"></p></div></section>
 <section style="grid-column:1/-1"><h2>Latest readings</h2><table id="latest"></table></section>
</main>
<script>
const $=id=>document.getElementById(id);
const SYM=${SYMBOLS};
const unit=u=>(u in SYM?SYM[u]:u);
const esc=s=>String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const dl=(el,rows)=>{el.innerHTML=rows.map(([k,v,c])=>'<dt>'+esc(k)+'</dt><dd class="'+(c||'')+'">'+esc(v)+'</dd>').join('')};
const mb=b=>(b/1048576).toFixed(1)+' MB';
async function tick(){
 try{
  const s=await (await fetch('/api/v1/status')).json();
  $('name').textContent=s.gateway.name+(s.simulation?' · simulation mode':'');
  $('addr').textContent=s.gateway.address;
  $('fb').hidden=!(fbOpen||s.firstboot==='unseen');
  dl($('gw'),[['version',s.version],['uptime',s.uptimeS+' s'],['clock',s.clock.state,s.clock.state==='unsynchronized'?'warn':'ok'],['boot id',s.clock.bootId]]);
  dl($('counts'),[['last seq',s.counts.lastSeq],['stored',s.counts.readings],['sealed batches',s.counts.lastBatchId],['open batch',s.counts.openBatch],['waiting for commit',s.counts.pending]]);
  dl($('store'),[['used',mb(s.store.usedBytes)+' of '+mb(s.store.maxBytes)],['state',s.store.full?'FULL: refusing input':'ok',s.store.full?'bad':'ok'],['retention',s.store.retentionHours+' h']]);
  $('sinks').innerHTML='<tr><th>sink</th><th>acked</th><th>backlog</th><th>state</th></tr>'+(s.sinks.length?s.sinks.map(k=>'<tr><td>'+esc(k.id)+'</td><td>'+esc(k.ackedBatchId)+'</td><td>'+esc(k.backlogBatches)+'</td><td>'+esc(k.state)+'</td></tr>').join(''):'<tr><td colspan=4>no sinks configured</td></tr>');
  const r=await (await fetch('/api/v1/readings?order=desc&limit=10')).json();
  $('latest').innerHTML='<tr><th>seq</th><th>device</th><th>source</th><th>metrics</th></tr>'+r.readings.map(x=>'<tr><td>'+esc(x.seq)+'</td><td>'+esc(x.reading.deviceId)+'</td><td>'+esc(x.reading.source)+'</td><td>'+esc(x.reading.metrics.map(m=>m.name+' '+m.value+(unit(m.unit)?' '+unit(m.unit):'')).join(', '))+'</td></tr>').join('');
 }catch(e){$('name').textContent='(gateway unreachable)'}
}
let fbOpen=false;
$('fbform').addEventListener('submit',async ev=>{
 ev.preventDefault();
 const res=await fetch('/api/v1/firstboot-report',{headers:{authorization:'Bearer '+$('fbtoken').value.trim()}});
 if(!res.ok){$('fberr').textContent=res.status===401?'That is not the API token.':'No report ('+res.status+').';return}
 const {report:r,first}=await res.json();fbOpen=true;
 const pw=r.generatedPasswords||{};
 $('fbbody').innerHTML='<dl id="fbdl"></dl><p>'+(first?'Shown once: write the passwords down now. The report stays in /home/admin/firstboot-report.txt.':'Already shown once; generated passwords are no longer shown here (see /home/admin/firstboot-report.txt).')+'</p>';
 dl($('fbdl'),[['gateway address',r.gatewayAddress+(r.keyRestored?' (restored)':'')],['host name',r.hostname],['status page',r.urls.statusPage],['Node-RED',r.urls.nodeRed],['SSH',r.urls.ssh]].concat(pw.nodeRed?[['Node-RED password (user admin)',pw.nodeRed,'warn']]:[]).concat([['applied',r.applied.join(', ')]]));
});
tick();setInterval(tick,3000);
</script></body></html>`
