// The chat page: js/wsactor.js for request/response with the Go server.
//   page -> server: join, switch (room), send, list (requests; refusals arrive as RemoteError)
//   server -> page: {type:'message'} and {type:'users'} pushes (plain messages),
//                   and {op:'presence'} requests, which the page answers.
import { connect, RemoteError } from './wsactor.js';

const $ = (id) => document.getElementById(id);
const client = connect(new URL('/primus', location.href), { reconnect: { min: 250, max: 5000 } });
let myName = null;
let myRoom = null;
let rooms = [];
const shown = new Set(); // message ids on the page (of the current room)

function setState(state, label) {
  document.body.dataset.state = state;
  $('status').textContent = label;
}

function showError(el, err) {
  el.hidden = false;
  el.textContent = err instanceof RemoteError ? err.message : `Something went wrong: ${err.message}`;
  el.dataset.code = err instanceof RemoteError ? err.code : err.name;
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function addMessage(m) {
  if (shown.has(m.id)) return; // a list reply and a push can overlap
  shown.add(m.id);
  const li = document.createElement('li');
  li.dataset.id = m.id;
  if (m.system) {
    li.className = 'system';
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.append(text);
  } else {
    li.className = 'msg' + (m.from === myName ? ' mine' : '');
    li.dataset.from = m.from;
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.style.background = `hsl(${hue(m.from)} 60% 52%)`;
    avatar.textContent = [...m.from][0].toUpperCase();
    const body = document.createElement('div');
    body.className = 'body';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const from = document.createElement('span');
    from.className = 'from';
    from.style.color = `hsl(${hue(m.from)} 55% 38%)`;
    from.textContent = m.from;
    const time = document.createElement('time');
    time.textContent = new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(from, time);
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = m.text;
    body.append(meta, text);
    li.append(avatar, body);
  }
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // in id order: a list reply may arrive after newer pushes
  let next = null;
  for (let el = list.lastElementChild; el && Number(el.dataset.id) > m.id; el = el.previousElementSibling) next = el;
  list.insertBefore(li, next);
  if (atBottom || m.from === myName) list.scrollTop = list.scrollHeight;
}

function renderRooms() {
  $('rooms').replaceChildren(
    ...rooms.map((room) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.room = room;
      b.textContent = `#${room}`;
      if (room === myRoom) b.classList.add('current');
      b.addEventListener('click', () => switchRoom(room).catch((err) => showError($('send-error'), err)));
      return b;
    }),
  );
}

function enterRoom(room) {
  if (room === myRoom) return;
  myRoom = room;
  shown.clear();
  $('messages').replaceChildren();
  renderRooms();
}

async function switchRoom(room) {
  const r = await client.request({ op: 'switch', room }, { timeout: 5000 });
  enterRoom(r.room);
  await refresh();
}

function renderUsers(users) {
  const ul = $('users');
  ul.replaceChildren(
    ...users.map((u) => {
      const li = document.createElement('li');
      li.dataset.name = u.name;
      li.textContent = u.name;
      if (u.away) li.classList.add('away');
      if (u.name === myName) li.classList.add('mine');
      return li;
    }),
  );
  $('count').textContent = `(${users.length})`;
}

// list: the room's history and who is in it.
async function refresh() {
  const { room, history, users } = await client.request({ op: 'list' }, { timeout: 5000 });
  if (room !== myRoom) return; // switched meanwhile
  for (const m of history) addMessage(m);
  renderUsers(users);
}

async function join(name) {
  const r = await client.request({ op: 'join', name }, { timeout: 5000 });
  myName = r.name;
  rooms = r.rooms;
  myRoom = null;
  enterRoom(r.room);
  $('join').hidden = true;
  $('room').hidden = false;
  $('me').hidden = false;
  $('me').textContent = myName;
  $('join-error').hidden = true;
  setState('joined', 'online');
  await refresh();
  $('text').focus();
}

// The server asks: "are you there?" Answering is all it takes.
client.onRequest((data) => {
  if (data?.op === 'presence') return { here: true, name: myName, visible: document.visibilityState === 'visible' };
  throw new RemoteError('unknown_op', `the page does not know ${JSON.stringify(data?.op)}`);
});

// The server pushes new messages and the user list of the member's room.
client.onMessage((m) => {
  if (m?.room !== myRoom) return; // the room we just left
  if (m.type === 'message') addMessage(m.message);
  else if (m.type === 'users') renderUsers(m.users);
});

client.on('open', () => {
  if (!myName) return setState('online', 'online');
  // A reconnect is a new session: join again under the same name.
  join(myName).catch((err) => {
    myName = null;
    $('room').hidden = true;
    $('join').hidden = false;
    showError($('join-error'), err);
    setState('online', 'online');
  });
});
client.on('close', (e) => {
  if (e.willReconnect) setState('reconnecting', 'reconnecting…');
});
client.on('end', () => setState('offline', 'offline'));

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const button = $('join-btn');
  button.disabled = true;
  try {
    await join($('name').value);
  } catch (err) {
    showError($('join-error'), err);
  } finally {
    button.disabled = false;
  }
});

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('text');
  const text = input.value;
  if (!text.trim()) return;
  try {
    await client.request({ op: 'send', text }, { timeout: 5000 });
    input.value = '';
    $('send-error').hidden = true;
  } catch (err) {
    showError($('send-error'), err);
  }
});
